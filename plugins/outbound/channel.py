"""OutboundChannel: one robot call (智能外呼) per delivery, through Alibaba Cloud."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from gateway.channel import (
    AccountInvalid,
    AccountRef,
    ContentKind,
    Failed,
    Outcome,
    Outgoing,
    RateLimit,
    Sent,
)
from gateway.redact import fingerprint, redact, redact_outcome
from plugins.aliyun.account import AliyunAccount
from plugins.aliyun.channel import AliyunChannel
from plugins.aliyun.client import Reply
from plugins.aliyun.errors import rule_for
from plugins.aliyun.numbers import phone_problem
from plugins.outbound.account import OutboundAccount
from plugins.outbound.calls import (
    CallInvalid,
    call_id,
    call_request,
    parameters,
    script_id_of,
    validation_request,
)
from plugins.outbound.classify import OUTBOUND_RULES, reply_outcome
from plugins.outbound.options import OutboundOptions

log = logging.getLogger(__name__)

# Documented limits (docs/providers.md §6.3, §7.2, §7.3). API rates per AccessKey: aiccs
# RobotCall 1000/s; BatchRobotSmartCall publishes none, the dyvms robot APIs around it 100/s
# [UNCONFIRMED for BatchRobotSmartCall]. Per callee, voice calls are held to 1/minute, 5/hour
# and 20 per 24 h (failed calls count) [DOC for notification calls; assumed for robot calls].
API_PER_SECOND = {"dyvms": 100, "aiccs": 1000}
PER_CALLEE = ((1, 60.0), (5, 3600.0), (20, 86400.0))
TRANSPORT_CODES = frozenset({"connect", "connection", "timeout"})


class OutboundChannel(AliyunChannel):
    """AI outbound calls: the script is the message's template, its parameters the variables.

    A message's ``text`` is not part of a robot call (the script lives at Alibaba Cloud); it is
    kept with the message for the record. The gateway refuses an empty message, so a script
    without parameters needs a ``text`` (say, what the call is about) or ``variables``.
    """

    name: ClassVar[str] = "outbound"
    content_kinds: ClassVar[frozenset[ContentKind]] = frozenset({ContentKind.VOICE})
    account_type: ClassVar[type[OutboundAccount]] = OutboundAccount
    options_type: ClassVar[type[OutboundOptions]] = OutboundOptions
    unit: ClassVar[str] = "call"

    def template_problem(self, template: str | None) -> str | None:
        """The script id (话术 ID) is the template, a number."""
        try:
            script_id_of(template)
        except CallInvalid as exc:
            return exc.reason
        return None

    def variables_problem(self, variables: dict[str, Any]) -> str | None:
        try:
            parameters(variables)
        except CallInvalid as exc:
            return exc.reason
        return None

    def config(self, account: AccountRef) -> OutboundAccount:
        config = super().config(account)
        assert isinstance(config, OutboundAccount)
        return config

    def url(self, config: AliyunAccount) -> str:
        """The chosen API's endpoint (dyvms or aiccs), or the account's own."""
        assert isinstance(config, OutboundAccount)
        return config.url

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        config = self.config(account)
        key = f"outbound:{config.api}:{config.access_key_id}"
        callee = f"{key}:callee:{fingerprint(outgoing.recipient)}"  # no phone numbers in keys
        return [
            RateLimit(key, API_PER_SECOND[config.api], 1.0),
            *(RateLimit(f"{callee}:{int(per)}", limit, per) for limit, per in PER_CALLEE),
        ]

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        try:
            config = self.config(account)
        except AccountInvalid as exc:
            return Failed(reason=exc.reason, code="config")
        problem = phone_problem(outgoing.recipient)
        if problem:
            return Failed(reason=f"{outgoing.recipient!r}: {problem}", code="recipient")
        options = outgoing.options if isinstance(outgoing.options, OutboundOptions) else None
        try:
            action, version, params = call_request(config, outgoing, options or OutboundOptions())
        except CallInvalid as exc:
            return Failed(reason=exc.reason, code=exc.code)
        answer = await self.call(config, action, params, version=version)
        if isinstance(answer, Reply):
            if answer.ok:
                provider_id = call_id(config, answer.body)
                outcome: Outcome = Sent(
                    provider_id=provider_id,
                    units=1,
                    answer=f"{action} OK: {provider_id or 'no id'} [RequestId {answer.request_id}]",
                )
            else:
                outcome = reply_outcome(answer)
        else:
            outcome = answer
        log.debug("outbound %s: %s", outgoing.delivery_id, type(outcome).__name__)
        return redact_outcome(outcome, [config.access_key_secret, config.receipt_token])

    async def validate_account(self, account: AccountRef) -> None:
        """List the account's scripts with a signed read: proves the AccessKey and the product.

        The company name and caller number cannot be checked without placing a call.
        """
        config = self.config(account)
        action, version = validation_request(config)
        answer = await self.call(config, action, {}, version=version, idempotent=True)
        if isinstance(answer, Reply) and answer.ok:
            return
        if isinstance(answer, Reply):
            outcome, field = reply_outcome(answer), rule_for(answer.code, OUTBOUND_RULES).field
        else:
            outcome = answer
            field = "endpoint" if answer.code in TRANSPORT_CODES else None
            if answer.code:
                field = rule_for(answer.code, OUTBOUND_RULES).field or field
        reason = redact(outcome.reason, [config.access_key_secret, config.receipt_token])
        raise AccountInvalid(reason, field=field)
