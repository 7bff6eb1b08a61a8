"""VoiceChannel: Alibaba Cloud voice notifications (dyvmsapi, API version 2017-05-25).

One SingleCallByTts per delivery: the callee hears the approved TTS template (``template`` =
TtsCode) with its variables (``variables`` = TtsParam). The CallId is the provider id that
call-result receipts (VoiceReport) name. ``validate_account`` proves the AccessKey with a
signed QueryCallDetailByCallId for a call that does not exist (a harmless query: only a
gateway or account-level refusal means the account is wrong).
"""

from __future__ import annotations

import logging
import time
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
from plugins.aliyun.errors import Kind, field_for, rule_for
from plugins.voice.account import VMS_ENDPOINT, VoiceAccount
from plugins.voice.classify import VOICE_RULES, classify_reply
from plugins.voice.compose import compose
from plugins.voice.recipients import callee_problem

log = logging.getLogger(__name__)

VERSION = "2017-05-25"
TTS_PER_SECOND = 1000  # SingleCallByTts per account (§6.3)
NOTIFICATION_PRODUCT = "11000000300006"  # ProdId of voice notifications (QueryCallDetailByCallId)
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


def _voice_account(account: AccountRef) -> VoiceAccount:
    config = account_from(account.config, VoiceAccount)
    assert isinstance(config, VoiceAccount)
    return config


class VoiceChannel(Channel):
    """Text-to-speech notification calls to mainland China numbers; a unit is one call."""

    name: ClassVar[str] = "voice"
    content_kinds: ClassVar[frozenset[ContentKind]] = frozenset(
        {ContentKind.VOICE, ContentKind.TEXT}
    )
    account_type: ClassVar[type[VoiceAccount]] = VoiceAccount
    unit: ClassVar[str] = "call"

    def __init__(self, client: AliyunClient | None = None) -> None:
        self.client = client or AliyunClient()

    def check_recipient(self, recipient: str) -> str | None:
        return callee_problem(recipient)

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        """Per callee 1 call a minute, 5 an hour, 20 a day (failed calls count too), and the
        API's 1000 calls a second per account (§6.3)."""
        try:
            config = _voice_account(account)
        except AccountInvalid:
            return []
        key = f"aliyun-vms:{config.access_key_id}"
        callee = f"{key}:{outgoing.recipient}"
        return [
            RateLimit(key, TTS_PER_SECOND, 1.0),
            RateLimit(callee + ":m", 1, MINUTE),
            RateLimit(callee + ":h", 5, HOUR),
            RateLimit(callee + ":d", 20, DAY),
        ]

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        """One SingleCallByTts; Sent means the call was placed, not answered (see receipts)."""
        try:
            config = _voice_account(account)
        except AccountInvalid as exc:
            return Failed(reason=exc.reason, code="config")
        try:
            request = compose(config, outgoing)
        except ValueError as exc:
            return Failed(reason=str(exc), code="invalid")
        answer = await self.client.call(
            config.base_url(VMS_ENDPOINT),
            "SingleCallByTts",
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
        call_id = answer.body.get("CallId")
        if not isinstance(call_id, str) or not call_id:
            return Failed(reason="SingleCallByTts answered OK without a CallId", code="unknown")
        return Sent(provider_id=call_id, units=1, answer=f"RequestId {answer.request_id}")

    async def validate_account(self, account: AccountRef) -> None:
        """A signed query for a call that does not exist: refusals at the gateway or for the
        account (product not enabled, no permission ...) mean the account is wrong."""
        config = _voice_account(account)
        answer = await self.client.call(
            config.base_url(VMS_ENDPOINT),
            "QueryCallDetailByCallId",
            VERSION,
            {
                "CallId": "0^0",
                "ProdId": NOTIFICATION_PRODUCT,
                "QueryDate": str(int(time.time() * 1000)),
            },
            config.access_key_id,
            config.access_key_secret,
            region_id=config.region,
            idempotent=True,
            timeout=config.timeout,
        )
        if not isinstance(answer, Reply):
            raise AccountInvalid(answer.reason, field_for(answer.code, VOICE_RULES))
        if not answer.ok and rule_for(answer.code, VOICE_RULES).kind is Kind.CONFIG:
            raise AccountInvalid(
                answer.outcome(VOICE_RULES).reason, field_for(answer.code, VOICE_RULES)
            )

    async def close(self) -> None:
        await self.client.close()
