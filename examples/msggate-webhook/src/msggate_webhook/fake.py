"""A fake webhook receiver: checks requests the way a careful receiver would, records them.

``POST /hooks/<anything>`` (mounted at ``/webhook`` by ``msggate fake-providers``, so an
account's url is ``http://127.0.0.1:9400/webhook/hooks/demo``). It checks, in order: the
required headers (``state.required_headers``), the JSON content type, the signature and its
timestamp window when ``state.secret`` is set (401 otherwise — :data:`DEMO_SECRET` unless a
test changes it), valid JSON and, for deliveries, the required fields. A ``ping`` is answered
200. Then ``state.replies`` may script the answer for a recipient (status, Retry-After, delay);
otherwise the delivery is recorded once per ``delivery_id`` and answered ``{"id": "wh-<n>"}``.
With ``state.receipt_url`` set it then POSTs a signed receipt there ``receipt_delay`` seconds
later (undelivered for the recipients in ``state.undelivered``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec
from aiohttp import web
from gateway.callbacks import FakeProvider

from msggate_webhook.signing import DELIVERY_HEADER, signature_problem, signed_headers

log = logging.getLogger(__name__)

DEMO_SECRET = "fake-webhook-demo-secret"  # what an account pointed at the fake signs with
REQUIRED_FIELDS = ("message_id", "delivery_id", "recipient")


@dataclass(frozen=True)
class Reply:
    """A scripted answer for one recipient: ``status`` after ``delay`` seconds."""

    status: int = 503
    retry_after: str | None = None
    body: str = ""
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One delivery the receiver accepted: its headers, raw body and decoded document."""

    headers: dict[str, str]
    body: bytes
    document: dict[str, Any]
    id: str


@dataclass
class ReceiverState:
    """What the fake expects, what it received and refused, and what it was told to do."""

    secret: str | None = DEMO_SECRET
    required_headers: dict[str, str] = field(default_factory=dict)
    window: float = 300.0
    replies: dict[str, Reply] = field(default_factory=dict)
    undelivered: dict[str, str] = field(default_factory=dict)  # recipient -> reason
    receipt_url: str | None = None
    receipt_secret: str | None = None
    receipt_delay: float = 0.5  # the gateway records a receipt only once it has the delivery
    received: list[Received] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)  # (status, why)
    pings: int = 0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _by_delivery: dict[str, str] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)


RECEIVER = web.AppKey("receiver", ReceiverState)


def _refuse(state: ReceiverState, status: int, why: str) -> web.Response:
    state.refused.append((status, why))
    return web.json_response({"error": why}, status=status)


async def receive(request: web.Request) -> web.Response:
    state = request.app[RECEIVER]
    for name, value in state.required_headers.items():
        if request.headers.get(name) != value:
            return _refuse(state, 401, f"missing or wrong {name} header")
    if request.content_type != "application/json":
        return _refuse(state, 415, f"expected application/json, not {request.content_type}")
    body = await request.read()
    if state.secret is not None:
        problem = signature_problem(state.secret, request.headers, body, state.window)
        if problem is not None:
            return _refuse(state, 401, problem)
    try:
        document = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return _refuse(state, 400, "the body is not JSON")
    if not isinstance(document, dict):
        return _refuse(state, 400, "the body is not a JSON object")
    if document.get("event") == "ping":
        state.pings += 1
        return web.json_response({"ok": True})
    missing = [f for f in REQUIRED_FIELDS if not (isinstance(document.get(f), str) and document[f])]
    if missing:
        return _refuse(state, 422, f"missing fields: {', '.join(missing)}")
    if request.headers.get(DELIVERY_HEADER) != document["delivery_id"]:
        return _refuse(state, 400, f"{DELIVERY_HEADER} differs from the body's delivery_id")
    reply = state.replies.get(document["recipient"])
    if reply is not None:
        await asyncio.sleep(reply.delay)
        if reply.status >= 300:
            headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
            return web.Response(status=reply.status, text=reply.body, headers=headers)
    known = state._by_delivery.get(document["delivery_id"])
    if known is not None:  # a resend of a delivery we have: same answer, nothing recorded
        return web.json_response({"id": known, "duplicate": True})
    received = Received(dict(request.headers), body, document, f"wh-{next(state._ids)}")
    state._by_delivery[document["delivery_id"]] = received.id
    state.received.append(received)
    if state.receipt_url:
        task = asyncio.create_task(_send_receipt(state, received))
        state._tasks.add(task)
        task.add_done_callback(state._tasks.discard)
    return web.json_response({"id": received.id})


async def _send_receipt(state: ReceiverState, received: Received) -> None:
    """Report back, as a receiver that knows the final result would, a moment later."""
    await asyncio.sleep(state.receipt_delay)
    recipient = received.document["recipient"]
    reason = state.undelivered.get(recipient)
    item = {"id": received.id, "status": "undelivered" if reason else "delivered"}
    item |= {"recipient": recipient, "reason": reason, "code": "REJECTED" if reason else None}
    body = msgspec.json.encode({"receipts": [item]})
    headers = {"Content-Type": "application/json"}
    if state.receipt_secret:
        headers.update(signed_headers(state.receipt_secret, body))
    assert state.receipt_url is not None
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.post(state.receipt_url, data=body, headers=headers) as response,
        ):
            if response.status != 200:
                log.warning("receipt for %s: HTTP %s", received.id, response.status)
    except aiohttp.ClientError as exc:
        log.warning("receipt for %s not sent: %r", received.id, exc)


async def _finish_receipts(app: web.Application) -> AsyncIterator[None]:
    yield
    tasks = app[RECEIVER]._tasks
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def make_app(state: ReceiverState | None = None) -> web.Application:
    """The fake receiver; ``app[RECEIVER]`` is its state."""
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app[RECEIVER] = state or ReceiverState()
    app.router.add_post("/hooks/{name}", receive)
    app.cleanup_ctx.append(_finish_receipts)
    return app


def fake_provider() -> FakeProvider:
    return FakeProvider(
        name="webhook",
        make_app=make_app,
        description=f"JSON webhook receiver at /hooks/<name>; sign with secret {DEMO_SECRET!r}",
    )
