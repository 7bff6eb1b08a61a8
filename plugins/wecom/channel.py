"""The ``wecom`` channel: WeCom application messages (text, markdown, text card).

One delivery is one recipient, so each delivery is one ``message/send`` naming one userid,
department or tag. WeCom could take up to 1000 users joined by "|" in one request, but its
answer reports failures per request (81013) or as a list (``invaliduser``): sending one per
delivery keeps every delivery's outcome, retries and metering exact, and costs nothing against
WeCom's limits (message sends do not count toward the per-API call limits; the per-member
limits count recipients either way).
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.channel import AccountInvalid, AccountRef, Outgoing, RateLimit
from gateway.httpcall import Answer
from gateway.redact import redact
from plugins.wecom.account import WecomAccount, account_from
from plugins.wecom.base import Classify, WecomBase
from plugins.wecom.classify import app_outcome, describe, errcode_of
from plugins.wecom.client import Result, TokenFailed, WecomClient
from plugins.wecom.compose import app_body
from plugins.wecom.options import APP_TEXT_BYTES, DEFAULT_OPTIONS, WecomOptions, options_of
from plugins.wecom.recipients import app_target

# Per application and member: 30 messages a minute, 1000 an hour; WeCom drops the excess
# silently (spec §1.5), so the gateway must pace, not learn it from an error.
PER_MEMBER_MINUTE = 30
PER_MEMBER_HOUR = 1000

# Which account field an errcode blames, for the console.
_FIELD = {
    40013: "corpid",
    41002: "corpid",
    40001: "corpsecret",
    41004: "corpsecret",
    40091: "corpsecret",
    40056: "agentid",
    41011: "agentid",
    50003: "agentid",
    60011: "agentid",
    301002: "agentid",
}


class WecomChannel(WecomBase):
    """Application messages through one WeCom self-built application per account."""

    name: ClassVar[str] = "wecom"
    log_label: ClassVar[str] = "wecom"
    account_type: ClassVar[type[WecomAccount]] = WecomAccount
    options_type: ClassVar[type[WecomOptions]] = WecomOptions
    # text and markdown content; a subject line counts against it, and a textcard's
    # description (the text) takes 512 bytes: send refuses what does not fit
    max_text_bytes: ClassVar[int | None] = APP_TEXT_BYTES

    def __init__(self) -> None:
        super().__init__()
        self.client = WecomClient(self._http)

    _parse = staticmethod(app_target)

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        config = account.config
        key = f"wecom:{config.corpid}:{config.agentid}:{outgoing.recipient.lower()}"
        return [
            RateLimit(f"{key}:minute", PER_MEMBER_MINUTE, 60.0),
            RateLimit(f"{key}:hour", PER_MEMBER_HOUR, 3600.0),
        ]

    def _prepare(self, config: WecomAccount, outgoing: Outgoing) -> tuple[dict[str, Any], Classify]:
        """One ``message/send`` to the delivery's recipient: one userid, department or tag."""
        options = options_of(outgoing, WecomOptions, DEFAULT_OPTIONS)
        target = app_target(outgoing.recipient)
        body = app_body(config.agentid, target, outgoing, options)
        return body, lambda answer: app_outcome(answer, target)

    async def _post(self, config: WecomAccount, body: dict[str, Any]) -> Result:
        return await self.client.send_message(config, body)

    @staticmethod
    def _secret(config: WecomAccount) -> str:
        return config.corpsecret

    async def validate_account(self, account: AccountRef) -> None:
        """Fetch a new token (corpid, secret) and read the application (agentid, trusted IP)."""
        config = account_from(account.config, WecomAccount)
        try:
            token = await self.client.fetch_token(config)
        except TokenFailed as exc:
            raise self._invalid(config, exc.outcome.reason, exc.errcode) from None
        result = await self.client.get_agent(config, token.value)
        if not isinstance(result, Answer):
            raise self._invalid(config, result.reason, None)
        parsed = errcode_of(result.body)
        if parsed is None:
            raise self._invalid(config, f"unexpected answer from agent/get: {result.body!r}", None)
        errcode, errmsg = parsed
        if errcode != 0:
            raise self._invalid(config, describe(errcode, errmsg), errcode)
        if result.body.get("agentid") not in (None, config.agentid):
            raise AccountInvalid("the secret belongs to another application", field="agentid")
        if result.body.get("close") == 1:
            raise AccountInvalid("the application is disabled in WeCom", field="agentid")

    @staticmethod
    def _invalid(config: WecomAccount, reason: str, errcode: int | None) -> AccountInvalid:
        reason = redact(reason, [config.corpsecret])
        if errcode is None:
            return AccountInvalid(f"cannot reach WeCom at {config.endpoint}: {reason}", "endpoint")
        return AccountInvalid(reason, field=_FIELD.get(errcode))
