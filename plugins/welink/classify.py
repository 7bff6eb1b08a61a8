"""WeLink answer codes and what each means for the gateway (docs/providers.md §3.3).

WeLink answers ``{"code": "0", "message": "ok", ...}``; ``code`` is a string ("0" = ok), though
some answers carry a number, so codes are compared as strings. The HTTP status of error answers
is not documented [UNCONFIRMED], so the body decides, whatever the status.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from gateway.channel import Failed, Retry

log = logging.getLogger(__name__)


class Kind(enum.Enum):
    OK = "ok"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    TOKEN_EXPIRED = "token_expired"
    CONFIG = "config"
    PERMANENT = "permanent"


NOT_GRANTED = "501"  # "第三方接口无权限": the app lacks the API grant (or holds a pre-grant token)
RATE_LIMIT_CODE = "48503"

CODES: dict[str, Kind] = {
    "0": Kind.OK,
    "1000": Kind.TOKEN_EXPIRED,  # access_token invalid / unusable
    "47101": Kind.TOKEN_EXPIRED,  # token format error
    "47103": Kind.TOKEN_EXPIRED,  # token expired
    RATE_LIMIT_CODE: Kind.RATE_LIMITED,
    "41500": Kind.RETRY,  # token fetch failure
    "41502": Kind.RETRY,
    "51002": Kind.RETRY,  # push failed (bounded by the gateway's attempt limit)
    "500": Kind.RETRY,
    "43999": Kind.RETRY,
    "55004": Kind.RETRY,
    NOT_GRANTED: Kind.CONFIG,
    "411007": Kind.CONFIG,  # client_id missing or client_secret wrong
    "51003": Kind.CONFIG,  # no publicAccID
    "51010": Kind.CONFIG,  # public account does not exist
    "401": Kind.CONFIG,
    "403": Kind.CONFIG,
    "47000": Kind.CONFIG,
    "55002": Kind.CONFIG,
    "51018": Kind.PERMANENT,  # more than 1000 users
    "51019": Kind.PERMANENT,  # not a follower of the public account
    "51042": Kind.PERMANENT,  # user list empty
    "43011": Kind.PERMANENT,  # parameter errors
    "47003": Kind.PERMANENT,
    "47004": Kind.PERMANENT,
    "47008": Kind.PERMANENT,
    "55005": Kind.PERMANENT,
    "55006": Kind.PERMANENT,
}

PER_SECOND_BACKOFF = 1.0  # 48503 from the 40/s or undisclosed per-second caps
PER_MINUTE_BACKOFF = 60.0  # 48503 from the 1500/min cap


def code_of(body: Any) -> str | None:
    """The answer's ``code`` as a string, or None if the body has none."""
    if isinstance(body, dict) and body.get("code") is not None:
        return str(body["code"]).strip()
    return None


def message_of(body: Any) -> str:
    if isinstance(body, dict) and body.get("message") is not None:
        return str(body["message"])
    return ""


def kind_of(code: str) -> Kind:
    """The class of a non-empty code; a code WeLink does not document counts as permanent."""
    return CODES.get(code, Kind.PERMANENT)


def rate_limit_wait(message: str) -> float:
    """How long a 48503 asks us to wait: a minute when the minute cap tripped, else a second."""
    lowered = message.lower()
    if "min" in lowered or "分钟" in message:
        return PER_MINUTE_BACKOFF
    return PER_SECOND_BACKOFF


def failure(code: str, message: str, status: int) -> Retry | Failed:
    """The outcome of an error answer (any class but OK and TOKEN_EXPIRED)."""
    reason = f"WeLink {code}: {message or 'no message'}"
    if status != 200:
        reason += f" (HTTP {status})"
    kind = kind_of(code)
    if kind is Kind.RATE_LIMITED:
        return Retry(reason=reason, code=code, after=rate_limit_wait(message))
    if kind in (Kind.RETRY, Kind.TOKEN_EXPIRED):
        return Retry(reason=reason, code=code)
    if kind is Kind.CONFIG:
        return Failed(reason=f"{reason} — check the WeLink account", code=code)
    return Failed(reason=reason, code=code)
