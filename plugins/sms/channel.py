"""SmsChannel: Alibaba Cloud SMS (dysmsapi, API version 2017-05-25) through SendSms.

One SendSms per delivery. SendBatchSms is not used: the gateway hands a channel one recipient
per delivery, and one call per delivery keeps each delivery's BizId, outcome and retry its own
(a batch would fail or retry its numbers together), while the provider advises SendSms for
urgent messages because batches may be delayed. A message to many numbers is still many
concurrent SendSms calls, well under the 5000/s API limit.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from gateway.channel import (
    AccountInvalid,
    AccountRef,
    ContentKind,
    Failed,
    Outgoing,
    RateLimit,
    Retry,
)
from plugins.aliyun.account import AliyunAccount
from plugins.aliyun.channel import SingleCallChannel
from plugins.aliyun.client import Reply
from plugins.aliyun.errors import field_for
from plugins.aliyun.numbers import mobile_problem, normalize
from plugins.sms.account import SMS_ENDPOINT, SmsAccount
from plugins.sms.classify import SMS_RULES, classify_reply
from plugins.sms.compose import MAX_TEXT_CHARS, NO_TEMPLATE, compose

log = logging.getLogger(__name__)

VERSION = "2017-05-25"
API_PER_SECOND = 5000  # SendSms and SendBatchSms, per account (§5.4)
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
SIGN_STATUS = {0: "is still under review", 2: "was rejected", 10: "review was cancelled"}


class SmsChannel(SingleCallChannel):
    """Text messages to mainland China mobile numbers; units are billed segments."""

    name: ClassVar[str] = "sms"
    content_kinds: ClassVar[frozenset[ContentKind]] = frozenset({ContentKind.TEXT})
    account_type: ClassVar[type[SmsAccount]] = SmsAccount
    unit: ClassVar[str] = "segment"
    max_text_chars: ClassVar[int | None] = MAX_TEXT_CHARS
    endpoint: ClassVar[str] = SMS_ENDPOINT
    version: ClassVar[str] = VERSION
    send_action: ClassVar[str] = "SendSms"
    provider_id_field: ClassVar[str] = "BizId"
    no_template: ClassVar[str | None] = NO_TEMPLATE
    rules = SMS_RULES

    def check_recipient(self, recipient: str) -> str | None:
        """SMS goes to mobiles only: why the (normalised) recipient is not one."""
        return mobile_problem(normalize(recipient))

    def config(self, account: AccountRef) -> SmsAccount:
        config = super().config(account)
        assert isinstance(config, SmsAccount)
        return config

    def compose(self, config: AliyunAccount, outgoing: Outgoing) -> tuple[dict[str, str], int]:
        assert isinstance(config, SmsAccount)
        request = compose(config, outgoing)
        return request.params, request.units

    def classify(self, reply: Reply) -> Retry | Failed:
        return classify_reply(reply)

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        """The documented default per-number limits (§5.4, doc 44335) and the API QPS.

        Verification-code templates: 1/minute, 5/hour, 10/day per signature and number, 40/day
        per number; other templates: 50/day per signature, template and number. A sliding
        window is at least as strict as the provider's natural minutes and hours.
        """
        try:
            config = self.config(account)
        except AccountInvalid:
            return []  # send() fails it with the reason
        key = f"aliyun-sms:{config.access_key_id}"
        number = outgoing.recipient
        limits = [RateLimit(key, API_PER_SECOND, 1.0)]
        template = outgoing.template or ""
        if template in config.verification_templates:
            per_sign = f"{key}:{config.sign_name}:{number}:verify"
            limits += [
                RateLimit(per_sign + ":m", 1, MINUTE),
                RateLimit(per_sign + ":h", 5, HOUR),
                RateLimit(per_sign + ":d", 10, DAY),
                RateLimit(f"{key}:{number}:verify:d", 40, DAY),
            ]
        else:
            limits.append(RateLimit(f"{key}:{config.sign_name}:{template}:{number}:d", 50, DAY))
        return limits

    async def validate_account(self, account: AccountRef) -> None:
        """A signed GetSmsSign: proves the AccessKey and that the signature is approved."""
        config = self.config(account)
        answer = await self.call(
            config, "GetSmsSign", {"SignName": config.sign_name}, idempotent=True
        )
        if not isinstance(answer, Reply):
            raise AccountInvalid(answer.reason, field_for(answer.code, SMS_RULES))
        if not answer.ok:
            outcome = answer.outcome(SMS_RULES)
            field = field_for(answer.code, SMS_RULES)
            if answer.code.startswith(("isv.SMS_SIGN", "isv.SIGN")):
                field = "sign_name"
            raise AccountInvalid(outcome.reason, field)
        status = answer.body.get("SignStatus")
        if status != 1:
            audit = answer.body.get("AuditInfo") or {}
            why = audit.get("RejectInfo") if isinstance(audit, dict) else None
            state = SIGN_STATUS.get(status, f"has status {status!r}")
            reason = f"the signature {config.sign_name!r} {state}" + (f": {why}" if why else "")
            raise AccountInvalid(reason, "sign_name")
