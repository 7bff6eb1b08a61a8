"""Access tokens for provider APIs: cached until shortly before expiry, one refresh at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable

import msgspec

REFRESH_MARGIN = 300.0  # seconds before expiry a token counts as stale (providers advise 300)


class Token(msgspec.Struct, frozen=True):
    value: str
    expires_in: float  # seconds, as the provider said

    def __repr__(self) -> str:
        return f"Token(expires_in={self.expires_in})"


class TokenCache:
    """Per-key tokens. Concurrent senders needing a refresh share one fetch (single flight)."""

    def __init__(self, margin: float = REFRESH_MARGIN) -> None:
        self._margin = margin
        self._tokens: dict[Hashable, tuple[str, float]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}
        # key -> (number of fetches finished, the exception the last one raised, or None)
        self._last: dict[Hashable, tuple[int, BaseException | None]] = {}
        self.fetches = 0

    async def get(self, key: Hashable, fetch: Callable[[], Awaitable[Token]]) -> str:
        """A valid token for ``key``, fetching one with ``fetch()`` only when needed."""
        cached = self._fresh(key)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(key, asyncio.Lock())
        begun = self._last.get(key, (0, None))[0]
        async with lock:
            cached = self._fresh(key)  # another sender may have refreshed while we waited
            if cached is not None:
                return cached
            count, failure = self._last.get(key, (0, None))
            if count > begun and failure is not None:
                raise failure  # the fetch we waited for failed: share its answer, don't repeat it
            self.fetches += 1
            try:
                token = await fetch()
            except Exception as exc:
                self._last[key] = (count + 1, exc)
                raise
            self._last[key] = (count + 1, None)
            lifetime = max(token.expires_in - self._margin, token.expires_in / 2)
            self._tokens[key] = (token.value, time.monotonic() + lifetime)
            return token.value

    def invalidate(self, key: Hashable, value: str | None = None) -> None:
        """Forget ``key``'s token (only if it is still ``value``, when given): it was refused."""
        current = self._tokens.get(key)
        if current is not None and (value is None or current[0] == value):
            del self._tokens[key]

    def _fresh(self, key: Hashable) -> str | None:
        current = self._tokens.get(key)
        if current is not None and current[1] > time.monotonic():
            return current[0]
        return None
