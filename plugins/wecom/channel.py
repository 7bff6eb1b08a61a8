"""The ``wecom`` channel: WeCom application messages (text, markdown, text card).

One delivery is one recipient, so each delivery is one ``message/send`` naming one userid,
department or tag. WeCom could take up to 1000 users joined by "|" in one request, but its
answer reports failures per request (81013) or as a list (``invaliduser``): sending one per
delivery keeps every delivery's outcome, retries and metering exact, and costs nothing against
WeCom's limits (message sends do not count toward the per-API call limits; the per-member
limits count recipients either way).
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
)
from gateway.httpcall import Answer
from gateway.redact import redact, redact_outcome
from plugins.wecom.account import WecomAccount, account_from
from plugins.wecom.classify import app_outcome, describe, errcode_of
from plugins.wecom.client import Http, TokenFailed, WecomClient
from plugins.wecom.compose import app_body
from plugins.wecom.options import APP_TEXT_BYTES, DEFAULT_OPTIONS, WecomOptions, options_of
from plugins.wecom.recipients import app_target

log = logging.getLogger(__name__)

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


class WecomChannel(Channel):
    """Application messages through one WeCom self-built application per account."""

    name: ClassVar[str] = "wecom"
    content_kinds: ClassVar[frozenset[ContentKind]] = frozenset({ContentKind.TEXT})
    account_type: ClassVar[type[WecomAccount]] = WecomAccount
    unit: ClassVar[str] = "message"
    options_type: ClassVar[type[WecomOptions]] = WecomOptions
    # text and markdown content; a subject line counts against it, and a textcard's
    # description (the text) takes 512 bytes: send refuses what does not fit
    max_text_bytes: ClassVar[int | None] = APP_TEXT_BYTES

    def __init__(self) -> None:
        self._http = Http()
        self.client = WecomClient(self._http)

    def check_recipient(self, recipient: str) -> str | None:
        try:
            app_target(recipient)
        except ValueError as exc:
            return str(exc)
        return None

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        config = account.config
        key = f"wecom:{config.corpid}:{config.agentid}:{outgoing.recipient.lower()}"
        return [
            RateLimit(f"{key}:minute", PER_MEMBER_MINUTE, 60.0),
            RateLimit(f"{key}:hour", PER_MEMBER_HOUR, 3600.0),
        ]

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        """One ``message/send`` to the delivery's recipient, classified (spec §1.4)."""
        try:
            config = account_from(account.config, WecomAccount)
        except AccountInvalid as exc:
            return Failed(reason=exc.reason, code="config")
        try:
            options = options_of(outgoing, WecomOptions, DEFAULT_OPTIONS)
            target = app_target(outgoing.recipient)
            body = app_body(config.agentid, target, outgoing, options)
        except ValueError as exc:
            return Failed(reason=str(exc), code="invalid")
        result = await self.client.send_message(config, body)
        outcome = app_outcome(result, target) if isinstance(result, Answer) else result
        log.debug("wecom %s via %s: %s", outgoing.delivery_id, account.name, type(outcome).__name__)
        return redact_outcome(outcome, [config.corpsecret])

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

    async def close(self) -> None:
        """Close the HTTP session; cached tokens go with the channel."""
        await self._http.close()
