"""The message log: every message with its deliveries, searched by channel, status, time, text.

The console's 消息日志 screen reads it; a message's whole lifecycle (ingress, attempts,
provider answers, receipts) comes from ``MessageService.detail``.
"""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

from gateway.console_store import ConsoleStore, LogRow, Overview
from gateway.errors import Invalid
from gateway.sql import contains

STATUSES = ("queued", "sending", "retrying", "sent", "failed", "delivered", "undelivered")
MAX_TEXT = 200
MAX_PAGE = 10_000


class LogPage(msgspec.Struct, frozen=True):
    """One page of the log, newest first; ``has_next`` when an older page exists."""

    rows: list[LogRow]
    page: int
    per_page: int
    has_next: bool


class MessageLog:
    """Searches the message log (read-only)."""

    def __init__(self, store: ConsoleStore) -> None:
        self.store = store

    async def search(
        self,
        channel: str | None = None,
        status: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        text: str | None = None,
        page: int = 1,
        per_page: int = 25,
    ) -> LogPage:
        """Messages matching every filter given; ``text`` matches subject, body, account,
        recipients (substring), or a message or provider id (exactly)."""
        if status is not None and status not in STATUSES:
            raise Invalid(f"status must be one of {', '.join(STATUSES)}", "status")
        if channel is not None and len(channel) > 64:
            raise Invalid("no channel has so long a name", "channel")
        for value, field in ((since, "since"), (until, "until")):
            if value is not None and value.tzinfo is None:
                raise Invalid("a time needs its time zone", field)
        if since is not None and until is not None and until <= since:
            raise Invalid("the end of the period must be after its start", "until")
        if not 1 <= page <= MAX_PAGE:
            raise Invalid(f"page must be 1-{MAX_PAGE}", "page")
        if not 1 <= per_page <= 200:
            raise Invalid("per_page must be 1-200", "per_page")
        pattern = exact_id = provider_id = None
        if text is not None and text.strip():
            text = text.strip()
            if len(text) > MAX_TEXT:
                raise Invalid(f"search text has at most {MAX_TEXT} characters", "text")
            pattern = contains(text)
            provider_id = text
            try:
                exact_id = uuid.UUID(text)
            except ValueError:
                exact_id = None
        rows = await self.store.messages(
            channel,
            status,
            since,
            until,
            pattern,
            exact_id,
            provider_id,
            per_page + 1,
            (page - 1) * per_page,
        )
        return LogPage(rows[:per_page], page, per_page, len(rows) > per_page)

    async def overview(self) -> Overview:
        return await self.store.overview()
