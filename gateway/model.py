"""Domain records passed between the store, the services and the API."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from typing import Any

import msgspec


class _RandomPool:
    """Bytes from ``os.urandom`` fetched a page at a time: one system call per 400 ids."""

    def __init__(self, page: int = 4000) -> None:
        self._page = page
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        if self._pos + n > len(self._buf):
            self._buf, self._pos = os.urandom(self._page), 0
        self._pos += n
        return self._buf[self._pos - n : self._pos]


_random = _RandomPool()
_new_uuid = object.__new__
_set = object.__setattr__
_MS_MASK = (1 << 48) - 1
_LOW_MASK = (1 << 62) - 1
_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): new rows land at the end of the index.

    Built without ``UUID.__init__`` (whose argument checks cost as much as the rest): the
    value is valid by construction. Two are made per accepted message.
    """
    rand = int.from_bytes(_random.take(10), "big")
    value = (time.time_ns() // 1_000_000 & _MS_MASK) << 80 | _VERSION_7
    value |= (rand >> 68 & 0xFFF) << 64 | _VARIANT | rand & _LOW_MASK
    u = _new_uuid(uuid.UUID)
    _set(u, "int", value)
    _set(u, "is_safe", uuid.SafeUUID.unknown)
    return u


class ApiKey(msgspec.Struct, frozen=True):
    id: int
    name: str
    prefix: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None


class AccountRow(msgspec.Struct, frozen=True):
    id: int
    channel: str
    name: str
    sandbox: bool
    config: dict[str, Any]
    secrets: bytes | None
    revision: int
    created_at: dt.datetime
    updated_at: dt.datetime

    def __repr__(self) -> str:
        return f"AccountRow(name={self.name!r}, channel={self.channel!r})"


class NewMessage(msgspec.Struct, frozen=True):
    """A validated message ready to be committed, with one delivery id per recipient."""

    id: uuid.UUID
    channel: str
    account_id: int
    account_name: str
    recipients: list[str]
    delivery_ids: list[uuid.UUID]
    subject: str | None
    text: str | None
    html: str | None
    variables: dict[str, Any]
    ingress: str
    ingress_detail: dict[str, Any]
    idempotency_scope: str | None
    idempotency_key: str | None
    request_hash: bytes | None
    send_at: dt.datetime | None
    template: str | None = None
    options: dict[str, Any] = {}
    raw: bytes | None = None  # original MIME to keep in message_raw (SMTP relay)


class ClaimedDelivery(msgspec.Struct, frozen=True):
    """A delivery leased to this node, with what is needed to send it."""

    id: uuid.UUID
    message_id: uuid.UUID
    recipient: str
    attempts: int
    channel: str
    account_id: int | None
    account_name: str
    subject: str | None
    body_text: str | None
    body_html: str | None
    variables: dict[str, Any]
    account_revision: int | None
    template: str | None = None
    options: dict[str, Any] = {}
    slot_at: dt.datetime | None = None
    size: int = 0  # bytes of text, html and original MIME: what it holds in memory


class Finished(msgspec.Struct, frozen=True):
    """The result of one attempt, to be written back."""

    id: uuid.UUID
    attempt: int
    status: str  # sent | retrying | failed
    kind: str  # the event kind recorded with it (sent | retrying | failed | deferred)
    detail: dict[str, Any]
    due_at: dt.datetime | None = None
    provider_id: str | None = None
    units: int | None = None
    code: str | None = None
    error: str | None = None


class EventRow(msgspec.Struct, frozen=True):
    delivery_id: uuid.UUID
    at: dt.datetime
    kind: str
    detail: dict[str, Any]
    message_id: uuid.UUID | None = None


class DeliveryRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    recipient: str
    status: str
    attempts: int
    due_at: dt.datetime
    provider_id: str | None
    units: int | None
    last_code: str | None
    last_error: str | None
    updated_at: dt.datetime
    finished_at: dt.datetime | None
    receipt_at: dt.datetime | None = None


class MessageRow(msgspec.Struct, frozen=True):
    id: uuid.UUID
    channel: str
    account_name: str
    subject: str | None
    body_text: str | None
    body_html: str | None
    variables: dict[str, Any]
    ingress: str
    ingress_detail: dict[str, Any]
    idempotency_key: str | None
    send_at: dt.datetime | None
    created_at: dt.datetime
    template: str | None = None
    options: dict[str, Any] = {}


class Receipt(msgspec.Struct, frozen=True):
    """A provider's report on a delivery it accepted earlier.

    It settles the delivery of its channel with ``provider_id`` (and ``recipient``, if given);
    with ``account`` (an account name), only a delivery of a message sent through that account,
    so a push verified for one account cannot settle another account's deliveries.
    """

    provider_id: str
    delivered: bool
    recipient: str | None = None
    code: str | None = None
    reason: str | None = None
    at: dt.datetime | None = None
    detail: dict[str, Any] = {}
    account: str | None = None


class SandboxRow(msgspec.Struct, frozen=True):
    id: int
    delivery_id: uuid.UUID
    message_id: uuid.UUID
    channel: str
    account: str
    recipient: str
    subject: str | None
    body_text: str | None
    body_html: str | None
    variables: dict[str, Any]
    recorded_at: dt.datetime
