"""HMAC-SHA256 request signatures, the same for the channel, the receipt route and the fake.

The signed string is ``<timestamp>.<body>``: the Unix time (seconds) sent in
``X-Msggate-Timestamp``, a dot, and the raw request body. The signature header is
``X-Msggate-Signature: sha256=<hex digest>``. A receiver recomputes it with the shared secret,
compares in constant time, and refuses timestamps outside its window (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Msggate-Signature"
TIMESTAMP_HEADER = "X-Msggate-Timestamp"
DELIVERY_HEADER = "X-Msggate-Delivery"
WINDOW_SECONDS = 300.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Msggate-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The timestamp and signature headers for ``body``, signed now."""
    timestamp = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: signature(secret, timestamp, body)}


def signature_problem(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    window: float = WINDOW_SECONDS,
    now: float | None = None,
) -> str | None:
    """Why the request's signature does not hold, or None if it does."""
    timestamp = headers.get(TIMESTAMP_HEADER)
    given = headers.get(SIGNATURE_HEADER)
    if not timestamp or not given:
        return f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}"
    try:
        skew = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return f"{TIMESTAMP_HEADER} is not a Unix time"
    if skew > window:
        return f"{TIMESTAMP_HEADER} is {skew:.0f}s away from now (window {window:.0f}s)"
    if not hmac.compare_digest(given, signature(secret, timestamp, body)):
        return "signature mismatch"
    return None
