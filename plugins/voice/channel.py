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

from gateway.channel import AccountInvalid, AccountRef, ContentKind, Outgoing, RateLimit
from plugins.aliyun.account import AliyunAccount
from plugins.aliyun.channel import SingleCallChannel
from plugins.aliyun.client import Reply
from plugins.aliyun.errors import Kind, field_for, rule_for
from plugins.voice.account import VMS_ENDPOINT, VoiceAccount
from plugins.voice.classify import VOICE_RULES
from plugins.voice.compose import NO_TEMPLATE, compose

log = logging.getLogger(__name__)

VERSION = "2017-05-25"
TTS_PER_SECOND = 1000  # SingleCallByTts per account (§6.3)
NOTIFICATION_PRODUCT = "11000000300006"  # ProdId of voice notifications (QueryCallDetailByCallId)
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0


class VoiceChannel(SingleCallChannel):
    """Text-to-speech notification calls to mainland China numbers; a unit is one call."""

    name: ClassVar[str] = "voice"
    content_kinds: ClassVar[frozenset[ContentKind]] = frozenset(
        {ContentKind.VOICE, ContentKind.TEXT}
    )
    account_type: ClassVar[type[VoiceAccount]] = VoiceAccount
    unit: ClassVar[str] = "call"
    endpoint: ClassVar[str] = VMS_ENDPOINT
    version: ClassVar[str] = VERSION
    send_action: ClassVar[str] = "SingleCallByTts"
    provider_id_field: ClassVar[str] = "CallId"
    no_template: ClassVar[str | None] = NO_TEMPLATE
    rules = VOICE_RULES

    def compose(self, config: AliyunAccount, outgoing: Outgoing) -> tuple[dict[str, str], int]:
        """The SingleCallByTts parameters; a placed call is one unit (answered or not)."""
        assert isinstance(config, VoiceAccount)
        return compose(config, outgoing).params, 1

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        """Per callee 1 call a minute, 5 an hour, 20 a day (failed calls count too), and the
        API's 1000 calls a second per account (§6.3)."""
        try:
            config = self.config(account)
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

    async def validate_account(self, account: AccountRef) -> None:
        """A signed query for a call that does not exist: refusals at the gateway or for the
        account (product not enabled, no permission ...) mean the account is wrong."""
        config = self.config(account)
        query = {
            "CallId": "0^0",
            "ProdId": NOTIFICATION_PRODUCT,
            "QueryDate": str(int(time.time() * 1000)),
        }
        answer = await self.call(config, "QueryCallDetailByCallId", query, idempotent=True)
        if not isinstance(answer, Reply):
            raise AccountInvalid(answer.reason, field_for(answer.code, VOICE_RULES))
        if not answer.ok and rule_for(answer.code, VOICE_RULES).kind is Kind.CONFIG:
            raise AccountInvalid(
                answer.outcome(VOICE_RULES).reason, field_for(answer.code, VOICE_RULES)
            )
