"""A fake WeLink open API (tokens and card notifications) for tests and demos.

It checks requests the way WeLink documents them (docs/providers.md §3.5): ``client_id`` /
``client_secret`` against its apps (``411007``), tokens in ``x-wlk-Authorization`` (missing or
unknown ``1000``, malformed ``47101``, expired ``47103``), per-app API grants (``501``; a token
keeps the grants its app had when it was issued, so a new grant needs a new token, as on
WeLink), ``msgRange`` against the lists, byte limits (title 128, content 512, owner 18), the
1000-user cap (``51018``) and the per-app 40/s and 1500/min limits (``48503``). It records every
card it accepts, and can be told to fail, stall or expire tokens. Business errors are answered
with HTTP ``error_status`` (200 by default: WeLink's status for errors is not documented).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gateway.callbacks import FakeProvider

CARD_API = "card/common"
TOKEN_FORMAT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DEMO_CLIENT_ID, DEMO_CLIENT_SECRET = "20190828163922073733756", "msggate-demo-welink-secret"
PARAM_ERROR = "43011"


@dataclass
class FakeApp:
    client_id: str
    client_secret: str
    grants: set[str] = field(default_factory=lambda: {CARD_API})


@dataclass
class IssuedToken:
    client_id: str
    expires_at: float
    grants: frozenset[str]


@dataclass
class Fault:
    """One scripted answer: a business ``code``, a bare HTTP ``http_status``, and/or a delay
    (a delay alone stalls the answer, then the request is handled normally)."""

    code: str | None = None
    message: str = ""
    status: int | None = None
    http_status: int | None = None
    delay: float = 0.0


@dataclass
class ReceivedCard:
    client_id: str
    item_id: str
    body: dict[str, Any]


class WeLinkError(Exception):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


class WeLinkFake:
    """The fake's state: apps, issued tokens, received cards, scripted faults."""

    def __init__(
        self,
        *,
        expires_in: int = 7200,
        per_second: int = 40,
        per_minute: int = 1500,
        error_status: int = 200,
        public_accounts: set[str] | None = None,
    ) -> None:
        self.expires_in = expires_in
        self.per_second = per_second
        self.per_minute = per_minute
        self.error_status = error_status
        self.public_accounts = public_accounts or set()
        self.apps: dict[str, FakeApp] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.cards: list[ReceivedCard] = []
        self.token_requests = 0
        self.card_requests = 0
        self.faults: dict[str, deque[Fault]] = {"tickets": deque(), "card": deque()}
        self.user_faults: dict[str, Fault] = {}
        self._calls: dict[str, deque[float]] = {}

    # -- set-up and fault injection (for tests) --------------------------------------------

    def add_app(
        self, client_id: str, client_secret: str, grants: set[str] | None = None
    ) -> FakeApp:
        app = FakeApp(client_id, client_secret, {CARD_API} if grants is None else grants)
        self.apps[client_id] = app
        return app

    def fail_next(
        self,
        where: str = "card",
        code: str | None = None,
        message: str = "",
        *,
        status: int | None = None,
        http_status: int | None = None,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests to ``where`` ("card" or "tickets") this way."""
        for _ in range(times):
            self.faults[where].append(Fault(code, message, status, http_status, delay))

    def fail_user(
        self, user: str, code: str | None = None, message: str = "", *, delay: float = 0.0
    ) -> None:
        """Answer every card to ``user`` with ``code`` (after ``delay``; no code: stall only)."""
        self.user_faults[user] = Fault(code, message, None, None, delay)

    def expire_tokens(self) -> None:
        """Every issued token expires now (the next send gets 47103)."""
        for token in self.tokens.values():
            token.expires_at = time.time() - 1

    def revoke_tokens(self) -> None:
        """Forget every issued token (the next send gets 1000)."""
        self.tokens.clear()

    def cards_to(self, user: str) -> list[ReceivedCard]:
        return [c for c in self.cards if user in c.body.get("toUserList", [])]

    # -- checks ---------------------------------------------------------------------------

    def issue(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise WeLinkError("411007", "client_id or client_secret is missing")
        client_id, secret = body.get("client_id"), body.get("client_secret")
        if not isinstance(client_id, str) or not isinstance(secret, str) or not client_id:
            raise WeLinkError("411007", "client_id or client_secret is missing")
        app = self.apps.get(client_id)
        if app is None or not hmac.compare_digest(secret.encode(), app.client_secret.encode()):
            raise WeLinkError("411007", "client_id or client_secret is incorrect")
        token = str(uuid.uuid4())
        self.tokens[token] = IssuedToken(
            client_id, time.time() + self.expires_in, frozenset(app.grants)
        )
        return {"code": "0", "message": "ok", "access_token": token, "expires_in": self.expires_in}

    def authorize(self, header: str | None, api: str) -> str:
        """The client_id a request's token belongs to; raise WeLinkError when it is refused."""
        if not header:
            raise WeLinkError("1000", "x-wlk-Authorization is missing")
        if not TOKEN_FORMAT.fullmatch(header):
            raise WeLinkError("47101", "access_token format error")
        token = self.tokens.get(header)
        if token is None:
            raise WeLinkError("1000", "access_token is invalid")
        if token.expires_at <= time.time():
            raise WeLinkError("47103", "access_token has expired")
        if api not in token.grants:
            raise WeLinkError("501", "第三方接口无权限")
        return token.client_id

    def throttle(self, client_id: str) -> None:
        now = time.monotonic()
        calls = self._calls.setdefault(client_id, deque())
        while calls and calls[0] <= now - 60:
            calls.popleft()
        if sum(1 for t in calls if t > now - 1) >= self.per_second:
            raise WeLinkError("48503", f"frequency over limit: {self.per_second} per second")
        if len(calls) >= self.per_minute:
            raise WeLinkError("48503", f"frequency over limit: {self.per_minute} per minute")
        calls.append(now)

    def check_card(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise WeLinkError(PARAM_ERROR, "request body must be a JSON object")
        for name, limit in (("msgOwner", 18), ("msgTitle", 128), ("msgContent", 512)):
            value = body.get(name)
            if not isinstance(value, str) or not value:
                raise WeLinkError(PARAM_ERROR, f"{name} is required")
            if len(value.encode()) > limit:
                raise WeLinkError(PARAM_ERROR, f"{name} exceeds {limit} bytes")
        msg_range = str(body.get("msgRange", "0"))  # the older example sends a bare number
        lists = {"0": ("toUserList", 1000), "1": ("departmentList", 100), "2": ("roleList", 100)}
        if msg_range not in lists:
            raise WeLinkError(PARAM_ERROR, f"msgRange {msg_range!r} is invalid")
        name, cap = lists[msg_range]
        targets = body.get(name)
        if targets is None or targets == []:
            raise WeLinkError("51042", f"{name} is empty")
        if not isinstance(targets, list) or not all(isinstance(t, str) and t for t in targets):
            raise WeLinkError(PARAM_ERROR, f"{name} must be an array of strings")
        if len(targets) > cap:
            raise WeLinkError("51018", f"{name} has more than {cap} entries")
        if str(body.get("receiveDeviceType", "2")) not in ("0", "1", "2"):
            raise WeLinkError(PARAM_ERROR, "receiveDeviceType must be 0, 1 or 2")
        if body.get("urlType", "html") != "html":
            raise WeLinkError(PARAM_ERROR, "urlType only supports html")
        if body.get("isForceTips", 0) not in (0, 1):
            raise WeLinkError(PARAM_ERROR, "isForceTips must be 0 or 1")
        account = body.get("publicAccID")
        if account is not None and account not in self.public_accounts:
            raise WeLinkError("51010", "public account does not exist")


WELINK_FAKE = web.AppKey("welink_fake", WeLinkFake)


def _error(fake: WeLinkFake, exc: WeLinkError, status: int | None = None) -> web.Response:
    body = {"code": exc.code, "message": exc.message, **exc.extra}
    return web.json_response(body, status=status or fake.error_status)


async def _scripted(fake: WeLinkFake, where: str) -> web.Response | None:
    """Play the next scripted fault for ``where``, if any; None = handle normally."""
    if not fake.faults[where]:
        return None
    fault = fake.faults[where].popleft()
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.http_status is not None:
        return web.Response(status=fault.http_status, text="fake WeLink: scripted HTTP error")
    if fault.code is not None:
        return _error(fake, WeLinkError(fault.code, fault.message), fault.status)
    return None


def _json_body(request: web.Request, raw: bytes) -> Any:
    if request.content_type != "application/json":
        raise WeLinkError(PARAM_ERROR, "Content-Type must be application/json")
    try:
        return json.loads(raw)
    except ValueError:
        raise WeLinkError(PARAM_ERROR, "request body is not JSON") from None


async def tickets(request: web.Request) -> web.Response:
    fake = request.app[WELINK_FAKE]
    fake.token_requests += 1
    raw = await request.read()  # read first: a stalled answer has still received the request
    scripted = await _scripted(fake, "tickets")
    if scripted is not None:
        return scripted
    try:
        return web.json_response(fake.issue(_json_body(request, raw)))
    except WeLinkError as exc:
        return _error(fake, exc)


async def card_common(request: web.Request) -> web.Response:
    fake = request.app[WELINK_FAKE]
    fake.card_requests += 1
    raw = await request.read()
    scripted = await _scripted(fake, "card")
    if scripted is not None:
        return scripted
    try:
        client_id = fake.authorize(request.headers.get("x-wlk-Authorization"), CARD_API)
        fake.throttle(client_id)
        body = _json_body(request, raw)
        fake.check_card(body)
        for user in body.get("toUserList") or []:
            fault = fake.user_faults.get(user)
            if fault is not None:
                await asyncio.sleep(fault.delay)
                if fault.code is not None:
                    raise WeLinkError(fault.code, fault.message, failedUserId=[user])
    except WeLinkError as exc:
        return _error(fake, exc)
    item_id = str(uuid.uuid4())
    fake.cards.append(ReceivedCard(client_id, item_id, body))
    return web.json_response({"code": "0", "message": "ok", "itemId": item_id})


async def control_faults(request: web.Request) -> web.Response:
    """Demos: ``{"where": "card", "code": "48503", "message": "...", "times": 1}`` and the like
    (the arguments of :meth:`WeLinkFake.fail_next`)."""
    fake = request.app[WELINK_FAKE]
    try:
        body = await request.json()
        fake.fail_next(**body)
    except (ValueError, TypeError, KeyError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"queued": {k: len(v) for k, v in fake.faults.items()}})


async def control_cards(request: web.Request) -> web.Response:
    """Demos: the last 100 cards received."""
    fake = request.app[WELINK_FAKE]
    cards = [{"client_id": c.client_id, "itemId": c.item_id, **c.body} for c in fake.cards[-100:]]
    return web.json_response({"cards": cards, "token_requests": fake.token_requests})


def make_app(fake: WeLinkFake | None = None) -> web.Application:
    """The fake WeLink API; without ``fake``, one demo app (see DEMO_CLIENT_ID/SECRET)."""
    if fake is None:
        fake = WeLinkFake()
        fake.add_app(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    app = web.Application()
    app[WELINK_FAKE] = fake
    app.router.add_post("/api/auth/v2/tickets", tickets)
    app.router.add_post("/api/messages/v2/card/common", card_common)
    app.router.add_post("/_fake/faults", control_faults)
    app.router.add_get("/_fake/cards", control_cards)
    return app


def fake_provider() -> FakeProvider:
    return FakeProvider(
        "welink",
        make_app,
        f"WeLink tickets + card/common; client_id {DEMO_CLIENT_ID},"
        f" client_secret {DEMO_CLIENT_SECRET}",
    )
