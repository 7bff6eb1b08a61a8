"""Custom-robot signing ("加签"), as DingTalk documents it (docs/providers.md §2.1).

``sign = urlencode(Base64(HMAC-SHA256(key=secret, msg=timestamp + "\\n" + secret)))`` with the
timestamp in milliseconds; DingTalk refuses a timestamp more than one hour from its clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import time
from urllib.parse import quote, quote_plus

log = logging.getLogger(__name__)

TIMESTAMP_WINDOW_MS = 3_600_000  # |now - timestamp| must not exceed one hour


def now_ms() -> int:
    return int(time.time() * 1000)


def robot_sign(secret: str, timestamp_ms: int | str) -> str:
    """The Base64 signature for ``timestamp_ms`` (before URL encoding)."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    mac = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


def robot_query(access_token: str, secret: str | None, timestamp_ms: int | None = None) -> str:
    """The webhook's query string, already URL-encoded: token, and timestamp + sign if signed.

    The sign is encoded with ``quote_plus`` as in DingTalk's own sample (``+`` → ``%2B``,
    ``/`` → ``%2F``, ``=`` → ``%3D``); an unencoded ``+`` would reach DingTalk as a space.
    """
    query = "access_token=" + quote(access_token, safe="")
    if secret:
        ts = now_ms() if timestamp_ms is None else timestamp_ms
        query += f"&timestamp={ts}&sign={quote_plus(robot_sign(secret, ts))}"
    return query


def check_robot_sign(
    secret: str, timestamp: str | None, sign: str | None, now: int | None = None
) -> str | None:
    """What DingTalk would say about this timestamp and (URL-decoded) sign; None if they pass."""
    if not timestamp or not timestamp.isdigit():
        return "invalid timestamp"
    current = now_ms() if now is None else now
    if abs(current - int(timestamp)) > TIMESTAMP_WINDOW_MS:
        return "invalid timestamp"
    expected = robot_sign(secret, timestamp)
    if not sign or not hmac.compare_digest(expected.encode(), sign.encode()):
        return "sign not match"
    return None
