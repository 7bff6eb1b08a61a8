"""A fake WeCom server (spec §1.6) that checks requests the way qyapi.weixin.qq.com does.

Serves ``/cgi-bin/gettoken``, ``/cgi-bin/message/send``, ``/cgi-bin/agent/get`` and
``/cgi-bin/webhook/send``. Business errors are HTTP 200 with ``errcode``/``errmsg`` as WeCom
sends them; faults (busy, rate limits, 5xx, slow answers) are injected through
:meth:`FakeWecom.fail_next`, tokens revoked or expired early through its test hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from aiohttp import web

from plugins.wecom.fake_state import (
    AppMessage,
    FakeApp,
    FakeWecom,
    Fault,
    IssuedToken,
    RobotMessage,
)
from plugins.wecom.options import (
    APP_MARKDOWN_BYTES,
    APP_TEXT_BYTES,
    CARD_BTNTXT_CHARS,
    CARD_DESCRIPTION_BYTES,
    CARD_TITLE_BYTES,
    CARD_URL_BYTES,
    ROBOT_MARKDOWN_BYTES,
    ROBOT_TEXT_BYTES,
)

log = logging.getLogger(__name__)

FAKE_WECOM = web.AppKey("fake_wecom", FakeWecom)

MAX_USERS, MAX_PARTIES, MAX_TAGS = 1000, 100, 100

ERRMSG = {
    -1: "system busy",
    0: "ok",
    40001: "invalid credential",
    40008: "invalid message type",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40032: "invalid userid list size",
    40039: "invalid url size",
    40056: "invalid agentid",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41010: "url missing",
    41011: "agentid missing",
    41016: "title missing",
    41033: "description missing",
    42001: "access_token expired",
    44004: "empty content",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    45034: "url must have protocol head",
    40058: "invalid Request Parameter",
    47001: "data format error",
    50003: "application is disabled",
    81013: "user & party & tag all invalid",
    82001: "All touser & toparty & totag invalid",
    82002: "toparty count exceed 100",
    82003: "totag count exceed 100",
    93000: "invalid webhook url",
    93004: "robot is disabled",
    93008: "robot not in the group",
}


class Refused(Exception):
    """A business error: answered as HTTP 200 with errcode/errmsg (plus extra fields)."""

    def __init__(self, errcode: int, detail: str = "", **extra: Any) -> None:
        super().__init__(errcode)
        self.errcode = errcode
        self.detail = detail
        self.extra = extra


class Answered(Exception):
    """An injected answer, ready to send."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _answer(request: web.Request, errcode: int, detail: str = "", **extra: Any) -> web.Response:
    """WeCom's error shape: ``errmsg, hint: [...], from ip: ..., more info at ...``."""
    text = ERRMSG.get(errcode, "error")
    if detail:
        text = f"{text}. {detail}"
    if errcode != 0:
        text += (
            f", hint: [{secrets.token_hex(8)}], from ip: {request.remote}, more info at"
            f" https://open.work.weixin.qq.com/devtool/query?e={errcode}"
        )
    return web.json_response({"errcode": errcode, "errmsg": text, **extra})


def _state(request: web.Request) -> FakeWecom:
    return request.app[FAKE_WECOM]


async def _fault(request: web.Request, api: str) -> web.Response | None:
    """The injected answer for this call, if a fault is queued (after its delay)."""
    return await _apply(request, _state(request).take_fault(api))


async def _recipient_fault(request: web.Request, recipients: list[str]) -> None:
    """Apply a fault set for one of ``recipients``: raise its answer, or just be slow."""
    answer = await _apply(request, _state(request).recipient_fault(recipients))
    if answer is not None:
        raise Answered(answer)


async def _apply(request: web.Request, fault: Fault | None) -> web.Response | None:
    if fault is None:
        return None
    if fault.delay:
        await asyncio.sleep(fault.delay)
    if fault.status is not None:
        return web.Response(status=fault.status, text=f"fake WeCom: HTTP {fault.status}")
    if fault.errcode is not None:
        return _answer(request, fault.errcode, fault.errmsg)
    return None  # a slow answer, then the normal one


async def _json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise Refused(47001, "Content-Type must be application/json")
    try:
        body = msgspec.json.decode(await request.read())
    except msgspec.DecodeError:
        raise Refused(47001, "body is not JSON") from None
    if not isinstance(body, dict):
        raise Refused(47001, "body is not a JSON object")
    return body


def _record(request: web.Request, api: str, body: Any) -> None:
    query = dict(request.query)
    for secret in ("corpsecret", "access_token", "key"):
        if secret in query:
            query[secret] = "***"
    _state(request).requests.append((api, query, body))


def _handler(api: str, logic: Any) -> Any:
    """Wrap a handler: record the request, apply faults, turn Refused into WeCom's answer."""

    async def handle(request: web.Request) -> web.Response:
        body = await request.read() if request.can_read_body else None
        _record(request, api, body.decode(errors="replace") if body else None)
        injected = await _fault(request, api)
        if injected is not None:
            return injected
        try:
            return await logic(request)
        except Refused as exc:
            return _answer(request, exc.errcode, exc.detail, **exc.extra)
        except Answered as exc:
            return exc.response

    return handle


# -- application -------------------------------------------------------------------------------


async def gettoken(request: web.Request) -> web.Response:
    state = _state(request)
    corpid, secret = request.query.get("corpid"), request.query.get("corpsecret")
    if not corpid:
        raise Refused(41002)
    if not secret:
        raise Refused(41004)
    app = state.find_app(corpid, secret)
    if isinstance(app, int):
        raise Refused(app)
    state.gettoken_calls += 1
    token = state.issue(app)
    left = max(1, round(token.expires_at - state.clock()))
    return _answer(request, 0, access_token=token.value, expires_in=left)


def _authorized(request: web.Request) -> IssuedToken:
    token = _state(request).check_token(request.query.get("access_token"))
    if isinstance(token, int):
        raise Refused(token)
    return token


def _check_agentid(value: Any, app: FakeApp) -> None:
    if value is None:
        raise Refused(41011)
    if not isinstance(value, int) or isinstance(value, bool) or value != app.agentid:
        raise Refused(40056, "agentid must be the integer id of the token's application")
    if app.disabled:
        raise Refused(50003)


def _ids(body: dict[str, Any], field: str) -> list[str]:
    value = body.get(field, "")
    if not isinstance(value, str):
        raise Refused(40058, f"{field} must be a string of ids joined by '|'")
    return [item for item in value.split("|") if item]


def _content(payload: Any, limit: int, msgtype: str) -> str:
    content = payload.get("content") if isinstance(payload, dict) else None
    if not isinstance(content, str) or not content:
        raise Refused(44004)
    if len(content.encode()) > limit:
        raise Refused(45002, f"{msgtype}.content exceeds {limit} bytes")
    return content


def _cut(text: str, limit: int) -> str:
    return text.encode()[:limit].decode(errors="ignore")


def _textcard(card: Any) -> list[str]:
    """Check a text card; truncate what WeCom truncates; return the fields it cut."""
    if not isinstance(card, dict):
        raise Refused(40058, "textcard must be an object")
    for name, errcode in (("title", 41016), ("description", 41033), ("url", 41010)):
        if not isinstance(card.get(name), str) or not card[name]:
            raise Refused(errcode)
    url = card["url"]
    if not url.startswith(("http://", "https://")):
        raise Refused(45034)
    if len(url.encode()) > CARD_URL_BYTES:
        raise Refused(40039)
    cut = []
    for name, limit in (("title", CARD_TITLE_BYTES), ("description", CARD_DESCRIPTION_BYTES)):
        if len(card[name].encode()) > limit:
            card[name] = _cut(card[name], limit)
            cut.append(name)
    btntxt = card.get("btntxt")
    if isinstance(btntxt, str) and len(btntxt) > CARD_BTNTXT_CHARS:
        card["btntxt"] = btntxt[:CARD_BTNTXT_CHARS]
        cut.append("btntxt")
    return cut


async def message_send(request: web.Request) -> web.Response:
    state = _state(request)
    app = _authorized(request).app
    body = await _json_body(request)
    _check_agentid(body.get("agentid"), app)
    msgtype = body.get("msgtype")
    truncated: list[str] = []
    if msgtype == "text":
        _content(body.get("text"), APP_TEXT_BYTES, "text")
    elif msgtype == "markdown":
        _content(body.get("markdown"), APP_MARKDOWN_BYTES, "markdown")
    elif msgtype == "textcard":
        truncated = _textcard(body.get("textcard"))
    else:
        raise Refused(40008)
    if body.get("safe", 0) not in (0, 1):
        raise Refused(40058, "safe must be 0 or 1")
    users, parties, tags = _ids(body, "touser"), _ids(body, "toparty"), _ids(body, "totag")
    if not (users or parties or tags):
        raise Refused(82001)
    await _recipient_fault(
        request, users + [f"party:{p}" for p in parties] + [f"tag:{t}" for t in tags]
    )
    if len(users) > MAX_USERS:
        raise Refused(40032)
    if len(parties) > MAX_PARTIES:
        raise Refused(82002)
    if len(tags) > MAX_TAGS:
        raise Refused(82003)
    everyone = users == ["@all"]
    bad_users = [] if everyone else [u.lower() for u in users if u.lower() not in app.users]
    bad_parties = [] if everyone else [p for p in parties if p not in app.parties]
    bad_tags = [] if everyone else [t for t in tags if t not in app.tags]
    invalid = {
        "invaliduser": "|".join(bad_users),
        "invalidparty": "|".join(bad_parties),
        "invalidtag": "|".join(bad_tags),
    }
    good = len(users) - len(bad_users) + len(parties) - len(bad_parties) + len(tags) - len(bad_tags)
    if not good and not state.legacy_invalid:
        raise Refused(81013, **invalid)
    members = ["@all"] if everyone else [u.lower() for u in users if u.lower() in app.users]
    delivered = [m for m in members if state.member_accepts(app.agentid, m)]
    msgid = secrets.token_urlsafe(24)
    state.messages.append(
        AppMessage(
            agentid=app.agentid,
            msgtype=msgtype,
            body=body,
            touser=users,
            toparty=parties,
            totag=tags,
            msgid=msgid,
            delivered_to=delivered,
            dropped=[m for m in members if m not in delivered],
            truncated=truncated,
        )
    )
    return _answer(request, 0, **invalid, msgid=msgid)


async def agent_get(request: web.Request) -> web.Response:
    app = _authorized(request).app
    agentid = request.query.get("agentid", "")
    if not agentid:
        raise Refused(41011)
    if not agentid.isdigit() or int(agentid) != app.agentid:
        raise Refused(40056, "a token reads its own application only")
    return _answer(
        request,
        0,
        agentid=app.agentid,
        name=app.name,
        allow_userinfos={"user": [{"userid": u} for u in sorted(app.users)]},
        allow_partys={"partyid": sorted(int(p) for p in app.parties)},
        allow_tags={"tagid": sorted(int(t) for t in app.tags)},
        close=1 if app.disabled else 0,
    )


# -- group robot -------------------------------------------------------------------------------


def _mentions(payload: dict[str, Any], field: str) -> list[str]:
    value = payload.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Refused(40058, f"{field} must be a list of strings")
    return value


async def webhook_send(request: web.Request) -> web.Response:
    state = _state(request)
    key = request.query.get("key", "")
    robot = state.robots.get(key)
    if robot is None:
        raise Refused(93000)
    if robot.disabled:
        raise Refused(93004)
    if not robot.in_group:
        raise Refused(93008)
    if state.robot_throttled(key):
        raise Refused(45009)
    body = await _json_body(request)
    msgtype = body.get("msgtype")
    payload = body.get(msgtype) if isinstance(msgtype, str) else None
    if msgtype not in ("text", "markdown"):
        raise Refused(40008)
    if not isinstance(payload, dict) or not isinstance(payload.get("content"), str):
        raise Refused(44004)
    content = payload["content"]
    limit = ROBOT_TEXT_BYTES if msgtype == "text" else ROBOT_MARKDOWN_BYTES
    if not content:
        raise Refused(44004)
    if len(content.encode()) > limit:
        raise Refused(40058, f"{msgtype}.content exceed max length {limit}")
    mentioned = _mentions(payload, "mentioned_list") if msgtype == "text" else []
    mobiles = _mentions(payload, "mentioned_mobile_list") if msgtype == "text" else []
    in_markdown = re.findall(r"<@([^>]+)>", content) if msgtype == "markdown" else []
    await _recipient_fault(request, mentioned + mobiles + in_markdown)
    state.robot_posted(key)
    state.robot_messages.append(
        RobotMessage(key, msgtype, content, mentioned, mobiles, state.clock())
    )
    return _answer(request, 0)


# -- wiring ------------------------------------------------------------------------------------


def make_app(state: FakeWecom | None = None) -> web.Application:
    """The fake WeCom application; ``app[FAKE_WECOM]`` is its state."""
    app = web.Application()
    app[FAKE_WECOM] = state if state is not None else FakeWecom()
    app.router.add_get("/cgi-bin/gettoken", _handler("gettoken", gettoken))
    app.router.add_post("/cgi-bin/message/send", _handler("message", message_send))
    app.router.add_get("/cgi-bin/agent/get", _handler("agent", agent_get))
    app.router.add_post("/cgi-bin/webhook/send", _handler("webhook", webhook_send))
    return app


class RunningFake:
    """A fake listening on a real port: its base URL (an account's ``endpoint``) and state."""

    def __init__(self, url: str, state: FakeWecom) -> None:
        self.url = url
        self.state = state


@contextlib.asynccontextmanager
async def running_fake(state: FakeWecom | None = None) -> AsyncIterator[RunningFake]:
    """Serve a fake WeCom on 127.0.0.1 (a free port) for the duration of the block."""
    app = make_app(state)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield RunningFake(f"http://127.0.0.1:{port}", app[FAKE_WECOM])
    finally:
        await runner.cleanup()
