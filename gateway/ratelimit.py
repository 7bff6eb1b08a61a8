"""Pacing sends to providers' rate limits by reserving slots, shared across nodes via Redis.

A limit "``limit`` per ``per_seconds``" is kept as a sliding window: a send may go at the
earliest moment when fewer than ``limit`` sends were reserved in the ``per_seconds`` before it.
``reserve`` books that moment and says how far away it is; the dispatcher defers the delivery
until then instead of sleeping. Without Redis every node keeps its own windows (so N nodes may
together send N times the rate: configure Redis for a shared limit); if Redis fails, the node
falls back to its own windows with a warning and never holds up or loses a delivery over it.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Protocol

log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    async def reserve(self, key: str, limit: int, per_seconds: float) -> float:
        """Book the earliest slot for one send under ``key``; return seconds until it (0 = now)."""
        ...

    async def close(self) -> None: ...


class LocalRateLimiter:
    """Sliding windows in this process."""

    MAX_KEYS = 10_000  # past this, windows with nothing reserved in their span are dropped

    def __init__(self) -> None:
        self._windows: dict[str, deque[float]] = {}
        self._spans: dict[str, float] = {}

    async def reserve(self, key: str, limit: int, per_seconds: float) -> float:
        return self.reserve_now(key, limit, per_seconds)

    def reserve_now(self, key: str, limit: int, per_seconds: float) -> float:
        now = time.time()
        if len(self._windows) > self.MAX_KEYS:
            self._forget_idle(now)
        self._spans[key] = per_seconds
        window = self._windows.get(key)
        if window is None or window.maxlen != limit:
            window = self._windows[key] = deque(window or (), maxlen=limit)
        slot = now
        if len(window) == limit:
            slot = max(now, window[0] + per_seconds)
        if window and slot < window[-1]:
            slot = window[-1]  # slots are handed out in order
        window.append(slot)
        return slot - now

    def _forget_idle(self, now: float) -> None:
        """Drop windows whose last slot is further back than their span: they limit nothing."""
        for key in [k for k, w in self._windows.items() if w[-1] + self._spans[k] < now]:
            del self._windows[key], self._spans[key]

    async def close(self) -> None:
        return None


# KEYS[1] the window (a list of reserved slot times, oldest first); ARGV: limit, per, now.
_RESERVE = """
local limit = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local slot = now
local n = redis.call('LLEN', KEYS[1])
if n >= limit then
  local oldest = tonumber(redis.call('LINDEX', KEYS[1], n - limit))
  if oldest + per > slot then slot = oldest + per end
end
if n > 0 then
  local last = tonumber(redis.call('LINDEX', KEYS[1], -1))
  if last > slot then slot = last end
end
redis.call('RPUSH', KEYS[1], tostring(slot))
redis.call('LTRIM', KEYS[1], -limit, -1)
redis.call('PEXPIREAT', KEYS[1], math.ceil((slot + per) * 1000))
return tostring(slot)
"""


class RedisRateLimiter:
    """Sliding windows in Redis (one atomic Lua script per reservation), shared by all nodes."""

    def __init__(self, url: str, prefix: str = "msggate:rl:") -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._script = self._redis.register_script(_RESERVE)
        self._prefix = prefix
        self._local = LocalRateLimiter()
        self._warned_at = 0.0

    async def reserve(self, key: str, limit: int, per_seconds: float) -> float:
        now = time.time()
        try:
            slot = float(
                await self._script(keys=[self._prefix + key], args=[limit, per_seconds, now])
            )
        except Exception as exc:  # Redis holds only what may be lost: degrade, don't stop
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("Redis rate limiter unavailable (%r): limits are per node now", exc)
            return self._local.reserve_now(key, limit, per_seconds)
        return max(0.0, slot - now)

    async def close(self) -> None:
        await self._redis.aclose()


def rate_limiter(redis_url: str | None) -> RateLimiter:
    return RedisRateLimiter(redis_url) if redis_url else LocalRateLimiter()
