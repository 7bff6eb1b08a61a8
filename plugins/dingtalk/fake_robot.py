"""The fake DingTalk's custom robot: ``POST /robot/send``, checked as DingTalk checks it.

Order of checks: the token (300005), the robot's security setting (signature and timestamp
window, IP allow-list: 310000), the body (20 000 bytes, message fields: 300001), keywords
(310000), ``msgUuid`` (a repeat gets the first answer and posts nothing), then 20 posts a
minute (130101 and a 10-minute block). DingTalk does not document the order of the security
and message checks; this one lets a signed post without a message type prove the credentials.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from aiohttp import web

from plugins.dingtalk.fake_answers import DOC, FAKE, err, fault, parse_json
from plugins.dingtalk.fake_state import RobotPost
from plugins.dingtalk.options import ROBOT_BODY_MAX
from plugins.dingtalk.sign import check_robot_sign

log = logging.getLogger(__name__)


def _mentioned(raw: bytes) -> list[str]:
    """The mobiles and userids a robot body @-mentions (for faults by recipient)."""
    body = parse_json(raw)
    at = body.get("at") if isinstance(body, dict) else None
    if not isinstance(at, dict):
        return []
    found = [*(at.get("atMobiles") or []), *(at.get("atUserIds") or [])]
    return [str(r) for r in found]


def _texts(body: dict[str, Any]) -> list[str]:
    """The text fields a keyword may appear in."""
    msgtype = body.get("msgtype")
    part = body.get(msgtype) if isinstance(msgtype, str) else None
    if not isinstance(part, dict):
        return []
    if msgtype == "feedCard":
        links = part.get("links") if isinstance(part.get("links"), list) else []
        return [str(link.get("title", "")) for link in links if isinstance(link, dict)]
    return [str(part.get(k, "")) for k in ("content", "title", "text") if part.get(k)]


_ROBOT_REQUIRED = {
    "text": ("content",),
    "markdown": ("title", "text"),
    "actionCard": ("title", "text"),
    "link": ("title", "text", "messageUrl"),
    "feedCard": ("links",),
}


def _robot_message_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "param error"
    msgtype = body.get("msgtype")
    if not msgtype:
        return "msgtype is null"
    if msgtype not in _ROBOT_REQUIRED:
        return f"msgtype {msgtype} is not supported"
    part = body.get(msgtype)
    if not isinstance(part, dict):
        return f"param error: {msgtype} is missing"
    for name in _ROBOT_REQUIRED[msgtype]:
        if not part.get(name):
            return f"param error: {msgtype}.{name} is missing"
    if msgtype == "actionCard":
        single = part.get("singleTitle") and part.get("singleURL")
        btns = part.get("btns")
        if not single and not (isinstance(btns, list) and btns):
            return "param error: actionCard needs singleTitle + singleURL or btns"
    at = body.get("at", {})
    if not isinstance(at, dict):
        return "param error: at"
    for name in ("atMobiles", "atUserIds"):
        values = at.get(name, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            return f"param error: at.{name}"
    if not isinstance(at.get("isAtAll", False), bool):
        return "param error: at.isAtAll"
    return None


def _ip_allowed(remote: str | None, allowed: tuple[str, ...]) -> bool:
    if remote is None:
        return False
    address = ipaddress.ip_address(remote)
    return any(address in ipaddress.ip_network(block, strict=False) for block in allowed)


async def robot_send(request: web.Request) -> web.Response:
    state = request.app[FAKE]
    raw = await request.read()  # before a slow fault: the request has fully arrived
    faulted = await fault(state, "robot", _mentioned(raw))
    if faulted is not None:
        return faulted
    robot = state.robots.get(request.query.get("access_token", ""))
    if robot is None:
        return err(300005, "token is not exist")
    now_ms = int(state.now() * 1000)
    if robot.secret:  # query values are URL-decoded here: an unencoded "+" became a space
        problem = check_robot_sign(
            robot.secret, request.query.get("timestamp"), request.query.get("sign"), now_ms
        )
        if problem:
            return err(310000, f"{problem}, {DOC}")
    if robot.allow_ips and not _ip_allowed(request.remote, robot.allow_ips):
        return err(310000, f"ip {request.remote} not in whitelist, {DOC}")
    if len(raw) > ROBOT_BODY_MAX:
        return err(300001, f"body 大小不合法;请保持大小在 {ROBOT_BODY_MAX}bytes 以内")
    body = parse_json(raw)
    problem = _robot_message_problem(body)
    if problem:
        return err(300001, problem)
    if robot.keywords and not any(k in t for k in robot.keywords for t in _texts(body)):
        return err(310000, f"keywords not in content, {DOC}")
    uuid = body.get("msgUuid")
    if isinstance(uuid, str) and uuid in robot.answers:
        state.counts["robot_duplicate"] += 1
        return web.json_response(robot.answers[uuid])
    now = state.now()
    if robot.blocked_until > now:
        return err(130101, "send too fast, exceed 20 times per minute")
    while robot.posted_at and robot.posted_at[0] <= now - 60.0:
        robot.posted_at.popleft()
    if len(robot.posted_at) >= robot.per_minute:
        robot.blocked_until = now + robot.block_seconds
        return err(130101, "send too fast, exceed 20 times per minute")
    robot.posted_at.append(now)
    state.robot_posts.append(RobotPost(robot.access_token, body, bool(robot.secret), now))
    state.counts["robot_ok"] += 1
    answer = {"errcode": 0, "errmsg": "ok"}
    if isinstance(uuid, str):
        robot.answers[uuid] = answer
    return web.json_response(answer)
