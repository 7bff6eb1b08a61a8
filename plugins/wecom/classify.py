"""WeCom answers turned into outcomes, by ``errcode`` only (spec §1.4; errmsg text may change).

Business errors come back as HTTP 200 with a non-zero ``errcode``. Transport failures, 5xx and
429 are classified earlier by ``gateway.httpcall``.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from gateway.channel import Failed, Outcome, Retry, Sent
from gateway.httpcall import Answer
from plugins.wecom.recipients import AppTarget

log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    OK = "ok"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    TOKEN_EXPIRED = "token_expired"
    CONFIG = "config"
    PERMANENT = "permanent"


BUSY = -1
RATE_LIMITED = 45009
CONCURRENCY = 45033
TOKEN_EXPIRED = frozenset({40014, 42001, 41001})
CONFIG = frozenset(
    {
        40001,  # invalid secret
        40013,  # invalid corpid
        40056,  # invalid agentid
        40091,  # secret of another company
        41002,  # corpid missing
        41004,  # secret missing
        41011,  # agentid missing
        48002,  # API not permitted to this app
        48006,  # API permission withdrawn (app unused for long)
        50003,  # app disabled
        60020,  # caller IP not in the app's trusted IPs
        93000,  # robot: invalid webhook key / robot removed
        93004,  # robot disabled
        93008,  # robot not in the group
    }
)
RATE_LIMIT_WINDOW = 60.0  # a per-minute limit blocks for 60 s (spec §1.5)
CONCURRENCY_BACKOFF = 1.0

# What an operator should check, for the CONFIG codes whose errmsg says little.
_HINTS = {
    60020: "add the gateway's public IP to the application's trusted IPs (企业可信IP)",
    50003: "the application is disabled in the WeCom admin console",
    48002: "the application may not call this API",
    93000: "the robot key is wrong or the robot was removed from its group",
    93004: "the robot is disabled",
    93008: "the robot is no longer in the group",
}


def verdict(errcode: int) -> Verdict:
    """The class of an ``errcode``; any unlisted non-zero code is permanent."""
    if errcode == 0:
        return Verdict.OK
    if errcode in (BUSY, CONCURRENCY):
        return Verdict.RETRY
    if errcode == RATE_LIMITED:
        return Verdict.RATE_LIMITED
    if errcode in TOKEN_EXPIRED:
        return Verdict.TOKEN_EXPIRED
    if errcode in CONFIG:
        return Verdict.CONFIG
    return Verdict.PERMANENT


def errcode_of(body: Any) -> tuple[int, str] | None:
    """``(errcode, errmsg)`` of a WeCom JSON answer, or None if it is not one."""
    if not isinstance(body, dict):
        return None
    code = body.get("errcode")
    if not isinstance(code, int) or isinstance(code, bool):
        return None
    return code, str(body.get("errmsg", ""))


def describe(errcode: int, errmsg: str) -> str:
    """The provider's own words, with a hint for account problems."""
    text = f"WeCom errcode {errcode}: {errmsg}".rstrip(": ")
    hint = _HINTS.get(errcode)
    if verdict(errcode) is Verdict.CONFIG:
        text = f"{text} (account problem{': ' + hint if hint else ''})"
    return text


def failure(errcode: int, errmsg: str) -> Retry | Failed:
    """The outcome of a non-zero errcode other than a token error (those are retried inside)."""
    reason = describe(errcode, errmsg)
    code = str(errcode)
    match verdict(errcode):
        case Verdict.RETRY:
            after = CONCURRENCY_BACKOFF if errcode == CONCURRENCY else 0.0
            return Retry(reason=reason, code=code, after=after)
        case Verdict.RATE_LIMITED:
            return Retry(reason=reason, code=code, after=RATE_LIMIT_WINDOW)
        case Verdict.TOKEN_EXPIRED:
            return Retry(reason=f"{reason} (even with a freshly fetched token)", code=code)
        case _:
            return Failed(reason=reason, code=code)


def not_wecom(status: int, body: Any) -> Retry:
    """An answer without an errcode: not what WeCom sends, so retry (bounded by the gateway)."""
    snippet = repr(body)[:200]
    return Retry(reason=f"HTTP {status} without a WeCom errcode: {snippet}", code=f"http-{status}")


_KIND = {"touser": "member", "toparty": "department", "totag": "tag"}
_INVALID_FIELD = {"touser": "invaliduser", "toparty": "invalidparty", "totag": "invalidtag"}


def _listed(value: Any) -> set[str]:
    """The ids in an ``invalid*`` field: a bar-joined string, or a list in newer answers."""
    if isinstance(value, str):
        items = value.split("|")
    elif isinstance(value, list):
        items = [str(v) for v in value]
    else:
        return set()
    return {item.strip().lower() for item in items if item.strip()}


def app_outcome(answer: Answer, target: AppTarget) -> Outcome:
    """The outcome of ``message/send`` for the one user, department or tag it was sent to.

    WeCom sends to the valid recipients and lists the others in ``invaliduser`` /
    ``invalidparty`` / ``invalidtag`` (userids lower-cased), even with errcode 0 (older
    behaviour); when all are invalid it answers 81013. Either way ours failed permanently.
    """
    parsed = errcode_of(answer.body)
    if parsed is None:
        return not_wecom(answer.status, answer.body)
    errcode, errmsg = parsed
    if errcode != 0:
        return failure(errcode, errmsg)
    field = _INVALID_FIELD[target.field]
    if target.value.lower() in _listed(answer.body.get(field)):
        kind = _KIND[target.field]
        return Failed(
            reason=f"WeCom did not send to {kind} {target.value!r}: listed in {field} (no such"
            f" {kind}, or outside the application's visible range)",
            code=field,
        )
    msgid = answer.body.get("msgid")
    return Sent(
        provider_id=str(msgid) if msgid else None,
        units=1,
        answer=f"errcode 0 {errmsg}".strip() + (f" msgid {msgid}" if msgid else ""),
    )


def robot_outcome(answer: Answer) -> Outcome:
    """The outcome of a robot ``webhook/send`` (no message id comes back)."""
    parsed = errcode_of(answer.body)
    if parsed is None:
        return not_wecom(answer.status, answer.body)
    errcode, errmsg = parsed
    if errcode != 0:
        return failure(errcode, errmsg)
    return Sent(provider_id=None, units=1, answer=f"errcode 0 {errmsg}".strip())
