"""Calling a provider's HTTP API, with transport failures already classified.

The generic rule (docs/providers.md §0): connection refused, DNS or TLS failure before the
request was written, HTTP 5xx, and unparseable answers are worth retrying; a timeout *after*
the request was sent is retried only for idempotent calls (token fetches) — for a send it is
"unknown", since the provider may have acted on it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import aiohttp
import msgspec

from gateway.channel import Failed, Retry

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0


class Answer(msgspec.Struct, frozen=True):
    """The provider answered: HTTP status, parsed JSON body, and headers."""

    status: int
    body: Any
    headers: dict[str, str] = {}


_QUERY = re.compile(r"\?[^\s'\")>]*")


def describe(exc: BaseException) -> str:
    """An exception as text for a reason, with URL query strings (tokens, keys) cut off."""
    return _QUERY.sub("?…", f"{type(exc).__name__}: {exc}")


def retry_after(headers: dict[str, str], default: float = 0.0) -> float:
    """Seconds from a Retry-After header (seconds form), else ``default``."""
    value = headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


async def call_json(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    idempotent: bool,
    timeout: float = DEFAULT_TIMEOUT,
    **kwargs: Any,
) -> Answer | Retry | Failed:
    """Make the request; return the JSON answer, or the Outcome its failure calls for.

    HTTP 5xx and 429 come back as ``Retry`` (429 honouring Retry-After); other statuses come
    back as an ``Answer`` for the channel to classify by the provider's own error codes.
    """
    try:
        async with session.request(
            method, url, timeout=aiohttp.ClientTimeout(total=timeout), **kwargs
        ) as response:
            raw = await response.read()
            headers = {k: v for k, v in response.headers.items()}
            status = response.status
    except (aiohttp.ClientConnectorError, aiohttp.ClientSSLError) as exc:
        return Retry(reason=f"cannot connect to the provider: {describe(exc)}", code="connect")
    except TimeoutError:
        if idempotent:
            return Retry(
                reason=f"the provider did not answer within {timeout:.0f}s", code="timeout"
            )
        return Failed(
            reason=f"no answer within {timeout:.0f}s after the request was sent: it may have been"
            " delivered, so it is not resent (a receipt will settle it)",
            code="unknown",
        )
    except aiohttp.ClientError as exc:
        if idempotent:
            return Retry(
                reason=f"connection to the provider failed: {describe(exc)}", code="connection"
            )
        return Failed(reason=f"connection failed after sending: {describe(exc)}", code="unknown")
    if status >= 500:
        return Retry(
            reason=f"provider error HTTP {status}", code=str(status), after=retry_after(headers)
        )
    if status == 429:
        return Retry(
            reason="HTTP 429 too many requests", code="429", after=retry_after(headers, 1.0)
        )
    try:
        body = msgspec.json.decode(raw) if raw else None
    except msgspec.DecodeError:
        snippet = raw[:200].decode(errors="replace")
        reason = f"HTTP {status} with an answer that is not JSON: {snippet!r}"
        if status >= 400:  # e.g. a wrong endpoint's 404 page: trying again will not help
            return Failed(reason=reason, code=str(status))
        return Retry(reason=reason, code=str(status))
    return Answer(status, body, headers)
