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
    Channel,
    ContentKind,
    Failed,
    Outcome,
    Outgoing,
    RateLimit,
    Sent,
)
from plugins.aliyun.account import account_from
from plugins.aliyun.client import AliyunClient, Reply
from plugins.aliyun.errors import field_for
from plugins.sms.account import SMS_ENDPOINT, SmsAccount
from plugins.sms.classify import SMS_RULES, classify_reply
from plugins.sms.compose import MAX_TEXT_CHARS, compose
from plugins.sms.recipients import mobile_problem

log = logging.getLogger(__name__)

VERSION = "2017-05-25"
API_PER_SECOND = 5000  # SendSms and SendBatchSms, per account (§5.4)
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
SIGN_STATUS = {0: "is still under review", 2: "was rejected", 10: "review was cancelled"}


def _sms_account(account: AccountRef) -> SmsAccount:
    config = account_from(account.config, SmsAccount)
    assert isinstance(config, SmsAccount)
    return config


class SmsChannel(Channel):
    """Text messages to mainland China mobile numbers; units are billed segments."""

    name: ClassVar[str] = "sms"
    content_kinds: ClassVar[frozenset[ContentKind]] = frozenset({ContentKind.TEXT})
    account_type: ClassVar[type[SmsAccount]] = SmsAccount
    unit: ClassVar[str] = "segment"
    max_text_chars: ClassVar[int | None] = MAX_TEXT_CHARS

    def __init__(self, client: AliyunClient | None = None) -> None:
        self.client = client or AliyunClient()

    def check_recipient(self, recipient: str) -> str | None:
        return mobile_problem(recipient)

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        """The documented default per-number limits (§5.4, doc 44335) and the API QPS.

        Verification-code templates: 1/minute, 5/hour, 10/day per signature and number, 40/day
        per number; other templates: 50/day per signature, template and number. A sliding
        window is at least as strict as the provider's natural minutes and hours.
        """
        try:
            config = _sms_account(account)
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

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        """One SendSms; the BizId is the provider id receipts name."""
        try:
            config = _sms_account(account)
        except AccountInvalid as exc:
            return Failed(reason=exc.reason, code="config")
        try:
            request = compose(config, outgoing)
        except ValueError as exc:
            return Failed(reason=str(exc), code="invalid")
        answer = await self.client.call(
            config.base_url(SMS_ENDPOINT),
            "SendSms",
            VERSION,
            request.params,
            config.access_key_id,
            config.access_key_secret,
            region_id=config.region,
            timeout=config.timeout,
        )
        if not isinstance(answer, Reply):
            return answer
        if not answer.ok:
            return classify_reply(answer)
        biz_id = answer.body.get("BizId")
        if not isinstance(biz_id, str) or not biz_id:
            return Failed(reason="SendSms answered OK without a BizId", code="unknown")
        return Sent(
            provider_id=biz_id, units=request.units, answer=f"RequestId {answer.request_id}"
        )

    async def validate_account(self, account: AccountRef) -> None:
        """A signed GetSmsSign: proves the AccessKey and that the signature is approved."""
        config = _sms_account(account)
        answer = await self.client.call(
            config.base_url(SMS_ENDPOINT),
            "GetSmsSign",
            VERSION,
            {"SignName": config.sign_name},
            config.access_key_id,
            config.access_key_secret,
            region_id=config.region,
            idempotent=True,
            timeout=config.timeout,
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

    async def close(self) -> None:
        await self.client.close()
