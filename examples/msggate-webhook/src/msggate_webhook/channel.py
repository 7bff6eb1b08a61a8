"""WebhookChannel: each delivery is one signed JSON POST to the account's URL."""

from __future__ import annotations

import logging
from typing import ClassVar

import aiohttp
from gateway.channel import (
    AccountInvalid,
    AccountRef,
    Channel,
    ContentKind,
    Failed,
    Outcome,
    Outgoing,
    RateLimit,
    Retry,
)

from msggate_webhook.account import WebhookAccount, WebhookOptions
from msggate_webhook.document import delivery_body, ping_body
from msggate_webhook.transport import post

log = logging.getLogger(__name__)

MAX_RECIPIENT = 256


class WebhookChannel(Channel):
    """The ``webhook`` channel: any HTTP endpoint that takes a JSON POST.

    The recipient is whatever the receiver understands (a user id, a room, an address); the
    channel only refuses empty ones, control characters and more than 256 characters.
    """

    name: ClassVar[str] = "webhook"
    content_kinds: ClassVar[frozenset[ContentKind]] = frozenset(
        {ContentKind.TEXT, ContentKind.RICH}
    )
    account_type: ClassVar[type[WebhookAccount]] = WebhookAccount
    options_type: ClassVar[type[WebhookOptions]] = WebhookOptions
    unit: ClassVar[str] = "request"
    # Our own cap, so a receiver's default body limit (aiohttp and many others: 1 MiB) is never
    # hit with text and html together; the receiver never sees a cut text.
    max_text_bytes: ClassVar[int] = 256 * 1024

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        """One pooled session for every account (created on first use, in the running loop)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def check_recipient(self, recipient: str) -> str | None:
        if not recipient.strip():
            return "the recipient is empty"
        if len(recipient) > MAX_RECIPIENT:
            return f"the recipient is longer than {MAX_RECIPIENT} characters"
        if any(not c.isprintable() for c in recipient):
            return "the recipient contains control characters"
        return None

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        per_minute = account.config.per_minute
        if per_minute is None:
            return []
        return [RateLimit(key=f"webhook:{account.name}", limit=per_minute, per_seconds=60.0)]

    def _too_long(self, outgoing: Outgoing) -> Failed | None:
        for field, value in (("text", outgoing.text), ("html", outgoing.html)):
            size = len(value.encode()) if value else 0
            if size > self.max_text_bytes:
                return Failed(
                    reason=f"the {field} is {size} bytes; the webhook channel takes at most"
                    f" {self.max_text_bytes}",
                    code="too_long",
                )
        return None

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        """POST the delivery document; the receiver's answer decides the outcome."""
        too_long = self._too_long(outgoing)
        if too_long is not None:
            return too_long
        outcome = await post(
            self._http(), account.config, delivery_body(outgoing), outgoing.delivery_id
        )
        log.debug("webhook %s via %s: %r", outgoing.delivery_id, account.name, outcome)
        return outcome

    async def validate_account(self, account: AccountRef) -> None:
        """POST a ``ping``: a 2xx proves the URL, the secret and the headers."""
        config: WebhookAccount = account.config
        outcome = await post(self._http(), config, ping_body())
        if isinstance(outcome, Retry | Failed):
            raise AccountInvalid(
                f"the receiver refused the ping: {outcome.reason}", _blame(outcome)
            )

    async def close(self) -> None:
        """Close the pooled connections."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _blame(outcome: Retry | Failed) -> str:
    """The account field a refused ping points at.

    A 401 or 403 is the secret when the receiver speaks of the signature, else the headers
    (the credentials it wants); anything else is the URL.
    """
    if outcome.code not in ("401", "403"):
        return "url"
    return "secret" if "signature" in outcome.reason.lower() else "headers"
