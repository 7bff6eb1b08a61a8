"""API keys: random tokens shown once; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import secrets
import time

from gateway.errors import Invalid, NotFound, Unauthorized
from gateway.model import ApiKey
from gateway.store import Store

PREFIX = "mg_"
CACHE_SECONDS = 10.0
MAX_CACHED = 10_000  # headers per cache; past this it starts over


def key_hash(key: str) -> bytes:
    # A fast hash is right here: keys are 256-bit random, so there is nothing to brute-force.
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """Creates, lists, revokes and checks API keys (checks are cached briefly)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Valid and refused headers are cached apart, so a flood of made-up keys can only ever
        # evict other made-up keys, never the callers we know.
        self._known: dict[str, tuple[float, ApiKey]] = {}
        self._refused: dict[str, float] = {}

    async def create(self, name: str) -> tuple[ApiKey, str]:
        name = name.strip()
        if not name or len(name) > 100:
            raise Invalid("a key name is 1-100 characters", "name")
        key = PREFIX + secrets.token_urlsafe(32)
        record = await self.store.insert_api_key(name, key_hash(key), key[:10])
        return record, key

    async def list(self) -> list[ApiKey]:
        return await self.store.list_api_keys()

    async def revoke(self, name: str) -> ApiKey:
        record = await self.store.revoke_api_key(name)
        if record is None:
            raise NotFound(f"no active API key named {name!r}", "name")
        self._known.clear()
        return record

    def known(self, authorization: str | None) -> bool:
        """Whether the header holds a key found valid within the last seconds (no I/O)."""
        hit = self._known.get(authorization or "")
        return hit is not None and hit[0] >= time.monotonic()

    async def check(self, authorization: str | None) -> ApiKey:
        """The key behind an ``Authorization: Bearer`` header, or Unauthorized.

        Answers are cached by the header itself, so a known caller costs one dict lookup.
        """
        header = authorization or ""
        now = time.monotonic()
        hit = self._known.get(header)
        if hit is not None and hit[0] >= now:
            return hit[1]
        refused_until = self._refused.get(header)
        if refused_until is not None and refused_until >= now:
            raise Unauthorized("unknown or revoked API key")
        record = await self.store.api_key_by_hash(key_hash(_bearer_key(header)))
        cache = self._known if record is not None else self._refused
        if len(cache) > MAX_CACHED:
            cache.clear()
        if record is None:
            self._refused[header] = now + CACHE_SECONDS
            raise Unauthorized("unknown or revoked API key")
        self._known[header] = (now + CACHE_SECONDS, record)
        return record


def _bearer_key(header: str) -> str:
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send Authorization: Bearer <api key>")
    return key.strip()
