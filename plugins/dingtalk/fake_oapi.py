"""The fake DingTalk's open API: tokens (``/gettoken``, ``/v1.0/oauth2/accessToken``) and work
notices (``asyncsend_v2``, ``getsendresult``), with DingTalk's token checks and silent drops.

Wording of refusals DingTalk does not document (a wrong ``agent_id``, missing fields) is the
fake's own, in DingTalk's topapi shape: ``errcode 88`` with ``sub_code``/``sub_msg``.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import msgspec
from aiohttp import web

from plugins.dingtalk.fake_answers import FAKE, err, fault, ok, param_error, parse_json, top_error
from plugins.dingtalk.fake_state import FakeApp
from plugins.dingtalk.options import NOTICE_MSG_MAX

log = logging.getLogger(__name__)

USERIDS_PER_CALL = 5000
LEGACY_USERIDS_PER_CALL = 100


def _userids(raw: bytes) -> list[str]:
    body = parse_json(raw)
    userids = body.get("userid_list") if isinstance(body, dict) else None
    return userids.split(",") if isinstance(userids, str) else []


# -- tokens -----------------------------------------------------------------------------------


async def gettoken(request: web.Request) -> web.Response:
    state = request.app[FAKE]
    faulted = await fault(state, "gettoken")
    if faulted is not None:
        return faulted
    app = state.apps.get(request.query.get("appkey", ""))
    secret = request.query.get("appsecret", "")
    if app is None or not secrets.compare_digest(app.appsecret.encode(), secret.encode()):
        return err(40096, "不合法的appKey或appSecret")
    token, ttl = state.issue_token(app)
    return ok(access_token=token, expires_in=ttl)


async def oauth2_access_token(request: web.Request) -> web.Response:
    state = request.app[FAKE]
    raw = await request.read()
    faulted = await fault(state, "oauth2")
    if faulted is not None:
        return faulted
    body = parse_json(raw)
    body = body if isinstance(body, dict) else {}
    app = state.apps.get(str(body.get("appKey", "")))
    secret = str(body.get("appSecret", ""))
    if app is None or not secrets.compare_digest(app.appsecret.encode(), secret.encode()):
        return web.json_response(
            {
                "requestid": secrets.token_hex(8),
                "code": "invalidClientIdOrSecret",
                "message": "无效的clientId或者clientSecret",
            },
            status=400,
        )
    token, ttl = state.issue_token(app)
    return web.json_response({"accessToken": token, "expireIn": ttl})


def _token_app(request: web.Request) -> FakeApp | web.Response:
    state = request.app[FAKE]
    token = request.query.get("access_token", "")
    if not token:
        return top_error("40000", "access_token is blank")
    app = state.app_of_token(token)
    if app is None:
        return top_error("40014", "不合法的access_token")
    return app


# -- work notices -----------------------------------------------------------------------------

_NOTICE_REQUIRED = {
    "text": ("content",),
    "markdown": ("title", "text"),
    "action_card": ("title", "markdown"),
    "link": ("messageUrl", "title", "text"),
    "image": ("media_id",),
    "file": ("media_id",),
    "oa": ("head", "body"),
}


def _notice_msg_problem(msg: Any) -> str | None:
    if not isinstance(msg, dict):
        return "msg 不能为空"
    msgtype = msg.get("msgtype")
    if msgtype not in _NOTICE_REQUIRED:
        return f"msgtype 不合法: {msgtype}"
    part = msg.get(msgtype)
    if not isinstance(part, dict):
        return f"msg.{msgtype} 不能为空"
    for name in _NOTICE_REQUIRED[msgtype]:
        if not part.get(name):
            return f"msg.{msgtype}.{name} 不能为空"
    if msgtype == "action_card":
        single = part.get("single_title") and part.get("single_url")
        btns = part.get("btn_json_list")
        if not single and not (isinstance(btns, list) and btns and part.get("btn_orientation")):
            return "action_card 需要 single_title+single_url 或 btn_orientation+btn_json_list"
    return None


async def asyncsend_v2(request: web.Request) -> web.Response:
    state = request.app[FAKE]
    raw = await request.read()
    faulted = await fault(state, "asyncsend", _userids(raw))
    if faulted is not None:
        return faulted
    app = _token_app(request)
    if isinstance(app, web.Response):
        return app
    body = parse_json(raw)
    if not isinstance(body, dict):
        return param_error("请求体不是合法的 JSON")
    agent_id = body.get("agent_id")
    if not isinstance(agent_id, int) or isinstance(agent_id, bool):
        return param_error("agent_id 必须是数字")
    if agent_id != app.agent_id:
        return param_error(f"agent_id {agent_id} 不属于该应用")
    userid_list = body.get("userid_list") or ""
    if not isinstance(userid_list, str):
        return param_error("userid_list 必须是逗号分隔的字符串")
    userids = [u for u in userid_list.split(",") if u]
    if not userids and not body.get("dept_id_list") and body.get("to_all_user") is not True:
        return param_error("userid_list、dept_id_list、to_all_user 不能同时为空")
    cap = LEGACY_USERIDS_PER_CALL if state.legacy_limits else USERIDS_PER_CALL
    if len(userids) > cap:
        return param_error(f"userid_list 最多 {cap} 个")
    msg = body.get("msg")
    problem = _notice_msg_problem(msg)
    if problem:
        return param_error(problem)
    raw_msg = msgspec.json.encode(msg)
    if len(raw_msg) > NOTICE_MSG_MAX:
        return param_error(f"msg 长度 {len(raw_msg)} 字节，超过 {NOTICE_MSG_MAX} 字节")
    notice = state.queue_notice(app, userids, msg, raw_msg)
    return ok(task_id=notice.task_id, request_id=secrets.token_hex(6))


async def getsendresult(request: web.Request) -> web.Response:
    state = request.app[FAKE]
    raw = await request.read()
    faulted = await fault(state, "getsendresult")
    if faulted is not None:
        return faulted
    app = _token_app(request)
    if isinstance(app, web.Response):
        return app
    body = parse_json(raw)
    body = body if isinstance(body, dict) else {}
    notice = state.notices.get(body.get("task_id"))  # type: ignore[arg-type]
    if notice is None or notice.appkey != app.appkey or body.get("agent_id") != app.agent_id:
        return param_error("task_id 不存在")
    return ok(send_result=state.send_result(notice), request_id=secrets.token_hex(6))
