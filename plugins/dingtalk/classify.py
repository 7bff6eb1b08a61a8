"""DingTalk answers → outcomes, as docs/providers.md §2.1 (robot) and §2.4 (oapi) classify them.

Both APIs answer HTTP 200 with ``errcode``/``errmsg``; transport failures, 5xx and 429 are
already outcomes from ``gateway.httpcall``. The robot's 310000 family shares one code, so it is
told apart by ``errmsg`` (older English wording and the current Chinese one both).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from gateway.channel import Failed, Retry, Sent
from gateway.httpcall import Answer
from gateway.tokens import Token

log = logging.getLogger(__name__)

ROBOT_BLOCK_SECONDS = 600.0  # a robot over 20/minute is throttled for 10 minutes
ROBOT_RATE_LIMITED = frozenset({130101, 660026, 410100})
ROBOT_SECURITY = 310000
ROBOT_BAD_TOKEN = frozenset({300005, 300001})

SYSTEM_BUSY = -1
TOKEN_EXPIRED_TOP = frozenset({40014, 42001})
TOKEN_EXPIRED_SUB = frozenset({"40014", "40000"})
OAPI_RATE_LIMITED = {90018: 1.0, 90006: 60.0, 90005: 60.0, 41047: 60.0, 41048: 60.0}
TOP_WRAPPED = 88  # topapi errors: the real code is in sub_code


class TokenExpired(msgspec.Struct, frozen=True):
    """The access token was refused: invalidate it, fetch a new one, retry once."""

    reason: str
    code: str


def errcode(answer: Answer) -> int | None:
    """The answer's ``errcode``, or None if it has none."""
    return _fields(answer)[0]


def _fields(answer: Answer) -> tuple[int | None, str, dict[str, Any]]:
    body = answer.body if isinstance(answer.body, dict) else {}
    code = body.get("errcode")
    if isinstance(code, str) and code.lstrip("-").isdigit():
        code = int(code)
    return (code if isinstance(code, int) else None), str(body.get("errmsg") or ""), body


def _unexpected(answer: Answer) -> Retry | Failed:
    """No errcode: a broken answer is retried (the attempt limit bounds it), a 4xx fails."""
    snippet = str(answer.body)[:200]
    if 400 <= answer.status < 500:
        return Failed(reason=f"HTTP {answer.status}: {snippet}", code=str(answer.status))
    return Retry(reason=f"HTTP {answer.status} without an errcode: {snippet}", code="answer")


def _has(text: str, *needles: str) -> bool:
    lowered = text.lower()
    return any(n in lowered for n in needles)


def timestamp_refused(answer: Answer) -> bool:
    """The robot refused the signature's timestamp (worth one retry with a fresh one)."""
    code, msg, _ = _fields(answer)
    return code == ROBOT_SECURITY and _has(msg, "timestamp", "时间戳")


def robot_outcome(answer: Answer, provider_id: str | None) -> Sent | Retry | Failed:
    """The outcome of a ``/robot/send`` answer."""
    code, msg, _ = _fields(answer)
    if code is None:
        return _unexpected(answer)
    if code == 0:
        return Sent(provider_id=provider_id, units=1, answer=msg or "ok")
    text = str(code)
    if code in ROBOT_RATE_LIMITED:
        return Retry(
            reason=f"the robot is throttled ({msg}); DingTalk blocks it for 10 minutes",
            code=text,
            after=ROBOT_BLOCK_SECONDS,
        )
    if code == SYSTEM_BUSY:
        return Retry(reason=f"DingTalk is busy: {msg}", code=text)
    if code == ROBOT_SECURITY:
        if _has(msg, "sign not match", "签名不匹配"):
            reason = f"the robot refused the signature: check the account's secret ({msg})"
        elif _has(msg, "timestamp", "时间戳"):
            reason = f"the robot refused the timestamp: is this host's clock right? ({msg})"
        elif _has(msg, "keyword", "关键词"):
            reason = f"the text lacks every keyword the robot's security setting requires ({msg})"
        elif _has(msg, "whitelist", "白名单", "ip "):
            reason = f"this host's IP address is not in the robot's allow-list ({msg})"
        else:
            reason = f"the robot's security setting refused the message ({msg})"
        return Failed(reason=reason, code=text)
    if code in ROBOT_BAD_TOKEN and _has(msg, "token", "不存在"):
        return Failed(reason=f"no robot has this access_token ({msg})", code=text)
    return Failed(reason=msg or f"DingTalk errcode {code}", code=text)


def oapi_outcome(answer: Answer) -> Sent | Retry | Failed | TokenExpired:
    """The outcome of a legacy ``oapi.dingtalk.com/topapi`` send (asyncsend_v2)."""
    code, msg, body = _fields(answer)
    if code is None:
        return _unexpected(answer)
    if code == 0:
        task_id = body.get("task_id")
        return Sent(
            provider_id=None if task_id is None else str(task_id),
            units=1,
            answer=f"task_id {task_id}",
        )
    sub_code = str(body.get("sub_code") or "")
    detail = str(body.get("sub_msg") or msg or f"errcode {code}")
    if code in TOKEN_EXPIRED_TOP or (code == TOP_WRAPPED and sub_code in TOKEN_EXPIRED_SUB):
        return TokenExpired(reason=detail, code=f"{code}/{sub_code}" if sub_code else str(code))
    return _oapi_failure(code, sub_code, detail)


def _oapi_failure(code: int, sub_code: str, detail: str) -> Retry | Failed:
    text = f"{code}/{sub_code}" if sub_code else str(code)
    effective = int(sub_code) if sub_code.isdigit() else code
    for candidate in (effective, code):
        if candidate in OAPI_RATE_LIMITED:
            return Retry(
                reason=f"DingTalk rate limit: {detail}",
                code=text,
                after=OAPI_RATE_LIMITED[candidate],
            )
    if code == SYSTEM_BUSY:
        return Retry(reason=f"DingTalk is busy: {detail}", code=text)
    return Failed(reason=detail, code=text)


def token_outcome(answer: Answer) -> Token | Retry | Failed:
    """The outcome of ``GET /gettoken``: a token, or why there is none."""
    code, msg, body = _fields(answer)
    if code is None:
        return _unexpected(answer)
    token = body.get("access_token")
    if code == 0 and isinstance(token, str) and token:
        expires_in = body.get("expires_in")
        return Token(token, float(expires_in) if isinstance(expires_in, int | float) else 7200.0)
    if code == 0:
        return Retry(reason="gettoken answered ok without an access_token", code="answer")
    sub_code = str(body.get("sub_code") or "")
    failure = _oapi_failure(code, sub_code, str(body.get("sub_msg") or msg))
    if isinstance(failure, Failed):
        return Failed(
            reason=f"DingTalk refused the app credentials: {failure.reason}", code=failure.code
        )
    return failure
