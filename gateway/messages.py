"""Accepting messages (validated, then group-committed) and reading them back with history."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from gateway.batching import Batcher
from gateway.channel import Channel, ContentKind, MessageDraft, MessageInvalid
from gateway.errors import Conflict, Invalid, NotFound, Unstorable, split_validation_error
from gateway.model import AccountRow, NewMessage, uuid7
from gateway.plugins import Plugins
from gateway.store import InsertResult, Store, item_error

MAX_RECIPIENTS = 1000
IDEMPOTENCY_KEY_MAX = 200  # characters, in the body's field or the Idempotency-Key header
ACCOUNT_CACHE_SECONDS = 5.0

Recipient = Annotated[str, Meta(min_length=1, max_length=320)]
IdempotencyKey = Annotated[str, Meta(min_length=1, max_length=IDEMPOTENCY_KEY_MAX)]
SendAt = Annotated[
    dt.datetime, Meta(extra_json_schema={"format": "date-time"}, description="with a time zone")
]
DeliveryStatus = Literal[
    "queued", "sending", "retrying", "sent", "failed", "delivered", "undelivered"
]  # the deliveries_status_check constraint's values


class MessageIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A message to send: one delivery per recipient."""

    channel: Annotated[str, Meta(min_length=1, max_length=64, description="channel name")]
    account: Annotated[str, Meta(min_length=1, max_length=200, description="sender account")]
    recipients: Annotated[list[Recipient], Meta(min_length=1, max_length=MAX_RECIPIENTS)]
    subject: Annotated[str, Meta(max_length=998)] | None = None
    text: Annotated[str, Meta(max_length=1_000_000)] | None = None
    html: Annotated[str, Meta(max_length=5_000_000)] | None = None
    variables: dict[str, Any] = {}
    template: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    options: dict[str, Any] = {}
    send_at: SendAt | None = None
    idempotency_key: IdempotencyKey | None = None

    # OpenAPI: prepare() refuses an empty message (see gateway.api.openapi)
    schema_rules: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {"required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}},
            {"required": ["html"], "properties": {"html": {"type": "string", "minLength": 1}}},
            {
                "required": ["variables"],
                "properties": {"variables": {"type": "object", "minProperties": 1}},
            },
        ]
    }


class DeliveryOut(msgspec.Struct):
    id: str
    recipient: str
    status: DeliveryStatus


class Accepted(msgspec.Struct):
    """The answer to an accepted message (also to a replay of its idempotency key)."""

    id: str
    deliveries: list[DeliveryOut]
    replayed: bool = False


class EventOut(msgspec.Struct):
    at: dt.datetime
    kind: str
    detail: dict[str, Any] = {}


class DeliveryDetail(msgspec.Struct):
    id: str
    recipient: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: dt.datetime | None
    provider_id: str | None
    units: int | None
    last_code: str | None
    last_error: str | None
    finished_at: dt.datetime | None
    events: list[EventOut]


class MessageDetail(msgspec.Struct):
    id: str
    channel: str
    account: str
    subject: str | None
    text: str | None
    html: str | None
    variables: dict[str, Any]
    ingress: str
    ingress_detail: dict[str, Any]
    idempotency_key: str | None
    send_at: dt.datetime | None
    created_at: dt.datetime
    template: str | None
    options: dict[str, Any]
    deliveries: list[DeliveryDetail]


class Ingress(msgspec.Struct, frozen=True):
    """Where a message came from: ``kind`` (http, smtp ...), details, and the idempotency scope."""

    kind: str
    detail: dict[str, Any] = {}
    scope: str = ""
    raw: bytes | None = None  # the original MIME (SMTP relay), committed with the message


def _request_hash(msg: MessageIn) -> bytes:
    return hashlib.sha256(
        msgspec.json.encode(msgspec.structs.replace(msg, idempotency_key=None))
    ).digest()


def _utc(when: dt.datetime | None) -> dt.datetime | None:
    """``when`` in UTC: PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 allows."""
    if when is None:
        return None
    if when.tzinfo is None:
        raise Invalid("send_at needs a time zone, e.g. 2026-01-01T09:00:00+08:00", "send_at")
    try:
        return when.astimezone(dt.UTC)
    except OverflowError:  # before 0001-01-01 or after 9999-12-31 in UTC
        raise Invalid("send_at is out of range (years 1-9999 in UTC)", "send_at") from None


def _too_long(channel: Channel, text: str) -> str | None:
    """Why ``text`` is longer than the channel takes whole, or None."""
    if channel.max_text_chars is not None and len(text) > channel.max_text_chars:
        return (
            f"{len(text)} characters: channel {channel.name!r} takes at most"
            f" {channel.max_text_chars}"
        )
    if channel.max_text_bytes is not None:
        size = len(text.encode())
        if size > channel.max_text_bytes:
            return (
                f"{size} bytes (UTF-8): channel {channel.name!r} takes at most"
                f" {channel.max_text_bytes}"
            )
    return None


class MessageService:
    """Validates and commits messages; reads them back.

    Accepting gives up after ``accept_timeout`` seconds (TimeoutError: the caller answers 503 /
    451). The commit may still land after that; the idempotency key makes the retry a replay.
    """

    def __init__(
        self,
        store: Store,
        plugins: Plugins,
        max_batch: int = 500,
        on_commit: Callable[[], None] | None = None,
        accept_timeout: float = 5.0,
    ) -> None:
        self.store = store
        self.plugins = plugins
        self.on_commit = on_commit
        self.accept_timeout = accept_timeout
        self._accounts: dict[str, tuple[float, AccountRow | None]] = {}
        self._batcher: Batcher[NewMessage, InsertResult] = Batcher(
            self._flush, max_batch, splittable=item_error
        )

    async def close(self) -> None:
        await self._batcher.close()

    def deadline(self) -> AbstractAsyncContextManager:
        """The accept deadline, for a caller that accepts several messages as one (the relay)."""
        return asyncio.timeout(self.accept_timeout)

    async def _flush(self, batch: Sequence[NewMessage]) -> list[InsertResult | Unstorable]:
        # The statement is bounded by the pool's (longer) timeout, not by the callers' deadline:
        # cancelled at the deadline, a batch that needs longer (large mails on a slow disk)
        # would fail on every retry. Callers that gave up retry, and their key makes it a replay.
        result = await self.store.insert_messages(batch)
        if self.on_commit is not None and len(result.skipped) + len(result.refused) < len(batch):
            self.on_commit()
        if result.refused:
            return [result.refused.get(m.id, result) for m in batch]
        return [result] * len(batch)

    async def _account(self, name: str) -> AccountRow | None:
        now = time.monotonic()
        hit = self._accounts.get(name)
        if hit is not None and hit[0] > now:
            return hit[1]
        row = await self.store.account_by_name(name)
        self._accounts[name] = (now + ACCOUNT_CACHE_SECONDS, row)
        return row

    def forget_account(self, name: str) -> None:
        self._accounts.pop(name, None)

    async def prepare(self, msg: MessageIn, ingress: Ingress) -> NewMessage:
        """Check a message against its channel and account; raise Invalid naming the field."""
        channel = self.plugins.channel(msg.channel)
        if channel is None:
            known = ", ".join(sorted(self.plugins.channels)) or "none"
            raise Invalid(f"unknown channel {msg.channel!r} (loaded: {known})", "channel")
        account = await self._account(msg.account)
        if account is None:
            raise Invalid(f"no account named {msg.account!r}", "account")
        if account.channel != msg.channel:
            raise Invalid(
                f"account {msg.account!r} belongs to channel {account.channel!r}", "account"
            )
        if not (msg.text or msg.html or msg.variables):
            raise Invalid("give text, html or variables: the message is empty", "text")
        if msg.html and not msg.text and ContentKind.RICH not in channel.content_kinds:
            raise Invalid(f"channel {msg.channel!r} takes plain text: give text", "text")
        if msg.text and (problem := _too_long(channel, msg.text)):
            raise Invalid(problem, "text")
        send_at = _utc(msg.send_at)
        recipients = list(dict.fromkeys(channel.normalize_recipient(r) for r in msg.recipients))
        for i, recipient in enumerate(recipients):
            problem = channel.check_recipient(recipient) if recipient else "empty recipient"
            if problem:
                raise Invalid(f"{recipient!r}: {problem}", f"recipients[{i}]")
        options = self._options(channel, msg.options)
        self._check_message(channel, msg, options)
        key = msg.idempotency_key
        return NewMessage(
            id=uuid7(),
            channel=msg.channel,
            account_id=account.id,
            account_name=account.name,
            recipients=recipients,
            delivery_ids=[uuid7() for _ in recipients],
            subject=msg.subject,
            text=msg.text,
            html=msg.html,
            variables=msg.variables,
            ingress=ingress.kind,
            ingress_detail=ingress.detail,
            idempotency_scope=ingress.scope if key else None,
            idempotency_key=key,
            request_hash=_request_hash(msg) if key else None,
            send_at=send_at,
            template=msg.template,
            options=options,
            raw=ingress.raw,
        )

    @staticmethod
    def _options(channel: Channel, options: dict[str, Any]) -> dict[str, Any]:
        """Check ``options`` against the channel's options type; return them normalised."""
        if channel.options_type is None:
            if options:
                raise Invalid(f"channel {channel.name!r} takes no options", "options")
            return {}
        try:
            typed = msgspec.convert(options, channel.options_type)
        except msgspec.ValidationError as exc:
            message, field = split_validation_error(exc)
            raise Invalid(message, "options" + (f".{field}" if field else "")) from None
        return msgspec.to_builtins(typed)

    @staticmethod
    def _check_message(channel: Channel, msg: MessageIn, options: dict[str, Any]) -> None:
        """The channel's own refusal of the message as a whole (``Channel.check_message``)."""
        check = getattr(channel, "check_message", None)  # a channel not built on Channel
        if check is None:
            return
        draft = MessageDraft(msg.subject, msg.text, msg.html, msg.variables, msg.template, options)
        try:
            check(draft)
        except MessageInvalid as exc:
            raise Invalid(exc.reason, exc.field) from None

    async def accept(self, msg: MessageIn, ingress: Ingress) -> Accepted:
        """Validate, commit (grouped with concurrent callers), and answer only once durable;
        TimeoutError once the accept deadline passes."""
        async with self.deadline():
            return await self._accept(msg, ingress)

    async def _accept(self, msg: MessageIn, ingress: Ingress) -> Accepted:
        new = await self.prepare(msg, ingress)
        result = await self._batcher.submit(new)
        if new.id not in result.skipped or new.idempotency_key is None:
            status = "queued"
            return Accepted(
                str(new.id),
                [
                    DeliveryOut(str(d), r, status)
                    for d, r in zip(new.delivery_ids, new.recipients, strict=True)
                ],
            )
        existing_id, existing_hash = result.existing[(ingress.scope, new.idempotency_key)]
        if existing_hash != new.request_hash:
            raise Conflict(
                "this idempotency key was used for a different message", "idempotency_key"
            )
        deliveries = await self.store.deliveries_of(existing_id)
        return Accepted(
            str(existing_id),
            [DeliveryOut(str(d.id), d.recipient, d.status) for d in deliveries],
            replayed=True,
        )

    async def detail(self, message_id: str) -> MessageDetail:
        try:
            mid = uuid.UUID(message_id)
        except ValueError:
            raise NotFound(f"no message with id {message_id!r}", "id") from None
        found = await self.store.message(mid)
        if found is None:
            raise NotFound(f"no message with id {message_id!r}", "id")
        m, deliveries, events = found
        by_delivery: dict[uuid.UUID, list[EventOut]] = {}
        for e in events:
            by_delivery.setdefault(e.delivery_id, []).append(EventOut(e.at, e.kind, e.detail))
        accepted = EventOut(m.created_at, "accepted", {"ingress": m.ingress})
        return MessageDetail(
            id=str(m.id),
            channel=m.channel,
            account=m.account_name,
            subject=m.subject,
            text=m.body_text,
            html=m.body_html,
            variables=m.variables,
            ingress=m.ingress,
            ingress_detail=m.ingress_detail,
            idempotency_key=m.idempotency_key,
            send_at=m.send_at,
            created_at=m.created_at,
            template=m.template,
            options=m.options,
            deliveries=[
                DeliveryDetail(
                    id=str(d.id),
                    recipient=d.recipient,
                    status=d.status,
                    attempts=d.attempts,
                    next_attempt_at=d.due_at if d.status in ("queued", "retrying") else None,
                    provider_id=d.provider_id,
                    units=d.units,
                    last_code=d.last_code,
                    last_error=d.last_error,
                    finished_at=d.finished_at,
                    events=[accepted, *by_delivery.get(d.id, [])],
                )
                for d in deliveries
            ],
        )
