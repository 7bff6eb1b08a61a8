"""Keeping secrets out of reasons, logs and keys: shared by every channel that carries one.

Provider credentials often travel in URLs (a robot's webhook key, a token in the query), and a
transport error's text may quote the URL. Channels pass every reason they build through
:func:`redact_outcome`, and name shared state (rate-limit keys, token caches) after a
:func:`fingerprint` of a secret, never the secret itself: rate-limit keys reach Redis and
delivery events.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import TypeVar

import msgspec
from aiohttp import web

log = logging.getLogger(__name__)

MASK = "***"
MIN_SECRET = 4  # shorter strings would mask innocent text by coincidence

_O = TypeVar("_O")


def fingerprint(secret: str, length: int = 16) -> str:
    """A short, stable, one-way name for ``secret`` (hex of its SHA-256)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:length]


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``."""
    for secret in sorted((s for s in secrets if s and len(s) >= MIN_SECRET), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact_outcome(outcome: _O, secrets: Iterable[str | None]) -> _O:
    """The outcome (``Sent``/``Retry``/``Failed``) with secrets masked in its reason/answer."""
    secrets = list(secrets)
    changes = {}
    for field in ("reason", "answer"):
        value = getattr(outcome, field, None)
        if isinstance(value, str):
            clean = redact(value, secrets)
            if clean != value:
                changes[field] = clean
    return msgspec.structs.replace(outcome, **changes) if changes else outcome


SECRET_PARAMS = ("token", "secret", "key", "password", "sign")


def request_path(request: web.Request) -> str:
    """The request's path for a log line, path parameters named like a secret (a receipt
    ``{token}``) shown as ``***``: providers' callback URLs carry their credential."""
    resource = request.match_info.route.resource
    info = request.match_info
    if resource is None or not any(s in k.lower() for k in info for s in SECRET_PARAMS):
        return request.path
    shown = {k: MASK if any(s in k.lower() for s in SECRET_PARAMS) else v for k, v in info.items()}
    try:
        return resource.canonical.format_map(shown)
    except (KeyError, IndexError, ValueError):
        return resource.canonical
