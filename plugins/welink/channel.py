"""WeLinkChannel: card notifications to WeLink users, with token caching and classification."""

from __future__ import annotations

import logging
import re
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
from gateway.redact import redact, redact_outcome
from plugins.welink.account import WeLinkAccount, account_from
from plugins.welink.card import CardInvalid, card_body
from plugins.welink.client import TokenUnavailable, WeLinkClient
from plugins.welink.options import CONTENT_MAX_BYTES, WeLinkOptions

log = logging.getLogger(__name__)

# WeLink user ids look like "john@welink" or an account name; the length cap is ours
# [UNCONFIRMED: WeLink documents none]. No spaces, commas or control characters.
USER_ID = re.compile(r"[^\s,;\x00-\x1f\x7f]{1,128}")

# §3.4: per client_id per API ≤ 40 calls/s and ≤ 1500 calls/min; per source IP ≤ 3000 calls
# per 20 s across all APIs (kept per endpoint here: with Redis that is shared by every node,
# which is stricter than per IP but never too loose).
PER_SECOND, PER_MINUTE, PER_IP_20S = 40, 1500, 3000

TRANSPORT_CODES = frozenset({"connect", "connection", "timeout"})  # from gateway.httpcall


class WeLinkChannel(Channel):
    """WeLink "普通卡片消息" (card notification, API v2): one card per recipient user id."""

    name: ClassVar[str] = "welink"
    content_kinds: ClassVar[frozenset[ContentKind]] = frozenset({ContentKind.TEXT})
    account_type: ClassVar[type[WeLinkAccount]] = WeLinkAccount
    options_type: ClassVar[type[WeLinkOptions]] = WeLinkOptions
    unit: ClassVar[str] = "message"
    max_text_bytes: ClassVar[int | None] = CONTENT_MAX_BYTES  # msgContent

    def __init__(self, client: WeLinkClient | None = None) -> None:
        self.client = client or WeLinkClient()

    def check_recipient(self, recipient: str) -> str | None:
        if not USER_ID.fullmatch(recipient):
            return (
                "not a WeLink user id (1-128 characters, no spaces, commas or control characters,"
                " e.g. john@welink)"
            )
        return None

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        config = account_from(account.config)
        app = f"welink:{config.base_url}:{config.client_id}:card"
        return [
            RateLimit(app, PER_SECOND, 1.0),
            RateLimit(app + ":min", PER_MINUTE, 60.0),
            RateLimit(f"welink:{config.base_url}:all", PER_IP_20S, 20.0),
        ]

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        try:
            config = account_from(account.config)
        except AccountInvalid as exc:
            return Failed(reason=exc.reason, code="config")
        problem = self.check_recipient(outgoing.recipient)
        if problem:
            return Failed(reason=f"{outgoing.recipient!r}: {problem}", code="recipient")
        try:
            body = card_body(config, outgoing)
        except CardInvalid as exc:
            return Failed(reason=exc.reason, code=exc.code)
        outcome = redact_outcome(await self.client.send_card(config, body), [config.client_secret])
        log.debug("welink %s: %s", outgoing.delivery_id, type(outcome).__name__)
        return outcome

    async def validate_account(self, account: AccountRef) -> None:
        """Fetch a fresh token: proves client_id and client_secret (not the API grants)."""
        config = account_from(account.config)
        try:
            token = await self.client.fetch_token(config)
        except TokenUnavailable as exc:
            code = exc.outcome.code
            field = "client_secret" if code == "411007" else None
            if code in TRANSPORT_CODES:
                field = "endpoint"
            reason = redact(exc.outcome.reason, [config.client_secret])
            raise AccountInvalid(reason, field=field) from None
        log.debug("welink account %s proven (token for %ss)", account.name, token.expires_in)

    async def close(self) -> None:
        await self.client.close()
