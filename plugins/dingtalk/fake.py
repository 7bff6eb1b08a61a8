"""A fake DingTalk that checks requests the way DingTalk does (docs/providers.md §2.6).

Routes (relative to where it is mounted; ``msggate fake-providers`` mounts it at
``/dingtalk``, so an account's ``endpoint`` is ``http://HOST:PORT/dingtalk``):

- ``POST /robot/send``: robot by ``access_token`` (300005 if unknown); its security setting —
  signature and ±1 h timestamp window (310000 ``invalid timestamp`` / ``sign not match``), IP
  allow-list, keywords; body ≤ 20 000 bytes and the message fields; ``msgUuid`` answered once;
  20 posts a minute, then 130101 and a 10-minute block.
- ``GET /gettoken`` and ``POST /v1.0/oauth2/accessToken``: app credentials → token with a
  configurable lifetime (40096 / HTTP 400 ``invalidClientIdOrSecret`` when wrong).
- ``POST /topapi/message/corpconversation/asyncsend_v2``: token (88/40014 when invalid or
  expired, 88/40000 when blank), ``agent_id``, recipients, ``msg`` ≤ 2 048 bytes; answers a
  ``task_id`` and applies the silent drops (same content to the same user on one day, over 500
  a day): still ``errcode 0``, but ``getsendresult`` shows them forbidden.
- ``POST /topapi/message/corpconversation/getsendresult``: the task's userid lists.
- ``/_fake/...``: control for demos and benchmarks (add robots/apps, faults, expire tokens,
  counters).

Faults (``FakeDingTalk.fail_next``): any HTTP status (5xx), any errcode body (rate limits,
expired tokens), slow answers (``delay``); ``expire_tokens()`` revokes every token.
Wording of refusals DingTalk does not document (bad ``agent_id``, bad fields) is the fake's own.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from plugins.dingtalk.fake_answers import FAKE
from plugins.dingtalk.fake_oapi import asyncsend_v2, getsendresult, gettoken, oauth2_access_token
from plugins.dingtalk.fake_robot import robot_send
from plugins.dingtalk.fake_state import FakeDingTalk

log = logging.getLogger(__name__)

__all__ = ["FAKE", "FakeDingTalk", "make_app", "serve"]


# -- control routes (demos, benchmarks) ------------------------------------------------------


def _refused(exc: Exception) -> web.Response:
    return web.json_response({"ok": False, "error": str(exc)}, status=400)


async def control_robots(request: web.Request) -> web.Response:
    spec = await request.json()
    spec["keywords"] = tuple(spec.get("keywords", ()))
    spec["allow_ips"] = tuple(spec.get("allow_ips", ()))
    try:
        request.app[FAKE].add_robot(**spec)
    except TypeError as exc:
        return _refused(exc)
    return web.json_response({"ok": True}, status=201)


async def control_apps(request: web.Request) -> web.Response:
    try:
        request.app[FAKE].add_app(**await request.json())
    except TypeError as exc:
        return _refused(exc)
    return web.json_response({"ok": True}, status=201)


async def control_faults(request: web.Request) -> web.Response:
    spec = await request.json()
    try:
        request.app[FAKE].fail_next(spec.pop("route", ""), **spec)
    except (TypeError, ValueError) as exc:
        return _refused(exc)
    return web.json_response({"ok": True}, status=201)


async def control_expire(request: web.Request) -> web.Response:
    request.app[FAKE].expire_tokens()
    return web.json_response({"ok": True})


async def control_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[FAKE].summary())


def demo_state() -> FakeDingTalk:
    """The state ``msggate fake-providers`` starts with: one robot of each kind and one app."""
    state = FakeDingTalk()
    state.add_robot("demo-robot-token", secret="SECdemo-robot-secret")
    state.add_robot("demo-open-robot")
    state.add_app("demo-appkey", "demo-appsecret", agent_id=1000001)
    return state


DEMO_DESCRIPTION = (
    "robots access_token demo-robot-token (secret SECdemo-robot-secret) and demo-open-robot;"
    " app demo-appkey / demo-appsecret, agent_id 1000001"
)


def make_app(state: FakeDingTalk | None = None) -> web.Application:
    """The fake as an aiohttp application; its state is ``app[FAKE]``."""
    app = web.Application()
    app[FAKE] = state if state is not None else demo_state()
    app.router.add_post("/robot/send", robot_send)
    app.router.add_get("/gettoken", gettoken)
    app.router.add_post("/v1.0/oauth2/accessToken", oauth2_access_token)
    app.router.add_post("/topapi/message/corpconversation/asyncsend_v2", asyncsend_v2)
    app.router.add_post("/topapi/message/corpconversation/getsendresult", getsendresult)
    app.router.add_post("/_fake/robots", control_robots)
    app.router.add_post("/_fake/apps", control_apps)
    app.router.add_post("/_fake/faults", control_faults)
    app.router.add_post("/_fake/expire-tokens", control_expire)
    app.router.add_get("/_fake/state", control_state)
    return app


@contextlib.asynccontextmanager
async def serve(
    state: FakeDingTalk | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Run the fake on a real socket; yield its base URL (an account's ``endpoint``)."""
    runner = web.AppRunner(make_app(state), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()
