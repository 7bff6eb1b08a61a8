"""The base of the channels on Alibaba Cloud's communication products (SMS, voice, robot calls).

What they share: one :class:`~plugins.aliyun.client.AliyunClient` per channel, an account that
is an :class:`~plugins.aliyun.account.AliyunAccount` subclass, recipients that are mainland
numbers in their bare form (:mod:`plugins.aliyun.numbers`), and signed calls to the product's
endpoint with the account's key, region and timeout.

:class:`SingleCallChannel` adds the send path of products that take one call per delivery and
answer it with the provider id their receipts name (SendSms → ``BizId``, SingleCallByTts →
``CallId``): a subclass says how to build the call (:meth:`~SingleCallChannel.compose`) and,
if it has codes of its own to treat specially, how to classify a refusal.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from gateway.channel import (
    AccountInvalid,
    AccountRef,
    Channel,
    Failed,
    MessageDraft,
    MessageInvalid,
    Outcome,
    Outgoing,
    Retry,
    Sent,
)
from plugins.aliyun.account import AliyunAccount, account_from
from plugins.aliyun.client import AliyunClient, Reply
from plugins.aliyun.errors import Rules, flow_control
from plugins.aliyun.numbers import normalize, phone_problem
from plugins.aliyun.params import string_variables

log = logging.getLogger(__name__)

BUSINESS_LIMIT = "isv.BUSINESS_LIMIT_CONTROL"


class AliyunChannel(Channel):
    """A channel on an Alibaba Cloud RPC product.

    Subclasses set ``account_type`` (an AliyunAccount subclass), ``endpoint`` (the product's
    public endpoint, used when the account names none) and ``version`` (the API version).
    Recipients are normalised to bare mainland numbers and must be a mobile or a landline;
    a product that takes mobiles only overrides :meth:`check_recipient`.
    """

    account_type: ClassVar[type[AliyunAccount]]
    endpoint: ClassVar[str] = ""
    version: ClassVar[str] = ""
    no_template: ClassVar[str | None] = None
    """Why a message without a template is refused at accept (None: a template is optional)."""

    def __init__(self, client: AliyunClient | None = None) -> None:
        self.client = client or AliyunClient()

    def normalize_recipient(self, recipient: str) -> str:
        """The bare number: ``+86 138-0013-8000`` → ``13800138000``."""
        return normalize(recipient)

    def check_recipient(self, recipient: str) -> str | None:
        """Why the (normalised) recipient is not a mainland mobile or landline number."""
        return phone_problem(normalize(recipient))

    def check_message(self, message: MessageDraft) -> None:
        """Refuse at accept what the product refuses for any recipient: see
        :meth:`template_problem` and :meth:`variables_problem`."""
        problem = self.template_problem(message.template)
        if problem:
            raise MessageInvalid(problem, "template")
        problem = self.variables_problem(message.variables)
        if problem:
            raise MessageInvalid(problem, "variables")

    def template_problem(self, template: str | None) -> str | None:
        """Why ``template`` cannot be sent: ``no_template`` when it is empty."""
        return self.no_template if not (template or "").strip() else None

    def variables_problem(self, variables: dict[str, Any]) -> str | None:
        """Why ``variables`` cannot be the template's parameters (strings or numbers only)."""
        try:
            string_variables(variables)
        except ValueError as exc:
            return str(exc)
        return None

    def config(self, account: AccountRef) -> AliyunAccount:
        """The account's typed config; raises AccountInvalid when it does not decode."""
        return account_from(account.config, self.account_type)

    def url(self, config: AliyunAccount) -> str:
        """Where to call: the account's endpoint, else the product's public one."""
        return config.base_url(self.endpoint)

    async def call(
        self,
        config: AliyunAccount,
        action: str,
        params: Mapping[str, str],
        *,
        version: str | None = None,
        idempotent: bool = False,
    ) -> Reply | Retry | Failed:
        """One signed call with the account's key, region and timeout (see AliyunClient)."""
        return await self.client.call(
            self.url(config),
            action,
            version or self.version,
            params,
            config.access_key_id,
            config.access_key_secret,
            region_id=config.region,
            idempotent=idempotent,
            timeout=config.timeout,
        )

    async def close(self) -> None:
        await self.client.close()


def business_outcome(reply: Reply, rules: Rules, now: float | None = None) -> Retry | Failed:
    """The outcome of a non-OK reply under ``rules``; per-number flow control
    (``isv.BUSINESS_LIMIT_CONTROL``) waits for the window its message names."""
    if reply.code == BUSINESS_LIMIT:
        now = time.time() if now is None else now
        return flow_control(reply.code, reply.message, now, rules, request_id=reply.request_id)
    return reply.outcome(rules)


class SingleCallChannel(AliyunChannel):
    """One call per delivery whose OK answer carries the provider id receipts will name.

    Subclasses also set ``send_action`` (``SendSms``), ``provider_id_field`` (``BizId``) and
    ``rules`` (the product's own codes, looked up before the shared ones), and implement
    :meth:`compose`.
    """

    send_action: ClassVar[str]
    provider_id_field: ClassVar[str]
    rules: ClassVar[Rules] = {}

    @abc.abstractmethod
    def compose(self, config: AliyunAccount, outgoing: Outgoing) -> tuple[dict[str, str], int]:
        """``(parameters, billed units)`` of the call; raise ValueError with a reason when the
        delivery cannot be sent (it fails without a call)."""

    def classify(self, reply: Reply) -> Retry | Failed:
        """The outcome of an answer whose Code is not OK."""
        return business_outcome(reply, self.rules)

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        """One call; Sent names the provider id, Failed ``config``/``invalid`` never called."""
        try:
            config = self.config(account)
        except AccountInvalid as exc:
            return Failed(reason=exc.reason, code="config")
        try:
            params, units = self.compose(config, outgoing)
        except ValueError as exc:
            return Failed(reason=str(exc), code="invalid")
        answer = await self.call(config, self.send_action, params)
        if not isinstance(answer, Reply):
            return answer
        if not answer.ok:
            return self.classify(answer)
        provider_id = answer.body.get(self.provider_id_field)
        if not isinstance(provider_id, str) or not provider_id:
            return Failed(
                reason=f"{self.send_action} answered OK without a {self.provider_id_field}",
                code="unknown",
            )
        return Sent(provider_id=provider_id, units=units, answer=f"RequestId {answer.request_id}")
