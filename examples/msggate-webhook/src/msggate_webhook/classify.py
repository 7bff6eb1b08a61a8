"""Turning the receiver's HTTP answer into an Outcome.

2xx: Sent, with the receiver's ``id`` (from a JSON object answer) as the provider id. 408, 425,
429 and 5xx: Retry, no sooner than Retry-After (seconds or an HTTP date). Anything else (1xx,
3xx, other 4xx): Failed with the status as the code; resending the same request cannot help.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus

import msgspec
from gateway.channel import Failed, Outcome, Retry, Sent
from gateway.httpcall import retry_after

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429})
SNIPPET_CHARS = 200
MAX_WAIT = 86_400.0  # a Retry-After further out than a day is treated as a day


def wait_seconds(headers: Mapping[str, str]) -> float:
    """Seconds the receiver asks us to wait (Retry-After), 0 if it does not say."""
    value = headers.get("Retry-After", "").strip()
    if not value:
        return 0.0
    if value.isdigit():
        return min(retry_after({"Retry-After": value}), MAX_WAIT)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return min(max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds()), MAX_WAIT)


def snippet(raw: bytes, secrets: Sequence[str] = ()) -> str:
    """The start of an answer, one line, with any secret the receiver echoed masked."""
    text = " ".join(raw[: SNIPPET_CHARS * 4].decode(errors="replace").split())[:SNIPPET_CHARS]
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def provider_id(raw: bytes) -> str | None:
    """The ``id`` of a JSON object answer (a string or a number), if there is one."""
    try:
        body = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    value = body.get("id") if isinstance(body, dict) else None
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
        return str(value)
    return None


def classify(
    status: int, headers: Mapping[str, str], raw: bytes, secrets: Sequence[str] = ()
) -> Outcome:
    """The outcome of an HTTP answer."""
    shown = snippet(raw, secrets)
    if 200 <= status < 300:
        return Sent(provider_id=provider_id(raw), answer=shown or None)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "unknown status"
    reason = f"HTTP {status} {phrase}" + (f": {shown}" if shown else "")
    if status in RETRY_STATUSES or status >= 500:
        return Retry(reason=reason, after=wait_seconds(headers), code=str(status))
    if 300 <= status < 400:
        where = snippet(headers.get("Location", "elsewhere").encode(), secrets)
        reason += f" (the receiver redirects to {where}: set the account's url to it)"
    return Failed(reason=reason, code=str(status))
