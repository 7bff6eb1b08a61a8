"""The JSON document the channel POSTs for each delivery, and the ping it validates with."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import msgspec
from gateway.channel import Outgoing

from msggate_webhook.account import WebhookOptions

log = logging.getLogger(__name__)


class Delivery(msgspec.Struct, kw_only=True):
    """What the receiver gets. ``delivery_id`` is the same on every attempt: dedupe by it."""

    event: str
    message_id: str
    delivery_id: str
    attempt: int
    recipient: str
    subject: str | None
    text: str | None
    html: str | None
    variables: dict[str, Any]
    template: str | None
    tags: list[str]
    sent_at: str


class Ping(msgspec.Struct, kw_only=True):
    """Sent when an account is saved, to prove the URL, secret and headers work."""

    event: str = "ping"
    sent_at: str


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def delivery_body(outgoing: Outgoing) -> bytes:
    """The request body for one delivery."""
    options = outgoing.options if isinstance(outgoing.options, WebhookOptions) else None
    options = options or WebhookOptions()
    document = Delivery(
        event=options.event,
        message_id=outgoing.message_id,
        delivery_id=outgoing.delivery_id,
        attempt=outgoing.attempt,
        recipient=outgoing.recipient,
        subject=outgoing.subject,
        text=outgoing.text,
        html=outgoing.html,
        variables=outgoing.variables,
        template=outgoing.template,
        tags=options.tags,
        sent_at=_now(),
    )
    return msgspec.json.encode(document)


def ping_body() -> bytes:
    """The request body of the ping ``validate_account`` sends."""
    return msgspec.json.encode(Ping(sent_at=_now()))
