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


def key_hash(key: str) -> bytes:
    # A fast hash is right here: keys are 256-bit random, so there is nothing to brute-force.
    return hashlib.sha256(key.encode()).digest()


class ApiKeys:
    """Creates, lists, revokes and checks API keys (checks are cached briefly)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}

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
        self._cache.clear()
        return record

    async def check(self, authorization: str | None) -> ApiKey:
        """The key behind an ``Authorization: Bearer`` header, or Unauthorized.

        Answers are cached by the header itself, so a known caller costs one dict lookup.
        """
        header = authorization or ""
        now = time.monotonic()
        hit = self._cache.get(header)
        if hit is None or hit[0] < now:
            digest = key_hash(_bearer_key(header))
            if len(self._cache) > 10_000:
                self._cache.clear()
            hit = (now + CACHE_SECONDS, await self.store.api_key_by_hash(digest))
            self._cache[header] = hit
        if hit[1] is None:
            raise Unauthorized("unknown or revoked API key")
        return hit[1]


def _bearer_key(header: str) -> str:
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("send Authorization: Bearer <api key>")
    return key.strip()
