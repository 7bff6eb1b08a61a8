"""A memory budget for large bodies: HTTP requests and SMTP messages being accepted.

A body costs memory several times its size while it is read, decoded and committed, and a
burst of them at once was what drove the gateway's RSS past a gigabyte. Bodies of at least
``LARGE`` bytes therefore take their size from one budget shared by the API and the relay
before they are read (HTTP) or loaded from their spool (SMTP), and give it back once committed;
one larger than the whole budget runs alone. Waiters are served in order; one that waits
longer than ``wait`` seconds is refused with :class:`Busy` (503 + Retry-After, or SMTP 451)
and may try again. Small bodies never wait. When the last large body is done, free memory is
handed back to the system (``gateway.malloc.trim``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator

from gateway import malloc
from gateway.errors import GatewayError, Unavailable

log = logging.getLogger(__name__)

LARGE = 256 * 1024  # bytes: smaller bodies take nothing from the budget
TRIM_DELAY = 1.0  # seconds without a large body before memory is handed back
RETRY_AFTER = 5  # seconds, told to a refused client


class Busy(Unavailable):
    """Too many large bodies at once: try again shortly."""

    code = "busy"
    retry_after = RETRY_AFTER


class TooLarge(GatewayError):
    status = 413
    code = "too_large"


class BodyBudget:
    """Bytes of large bodies in process at once (``limit``), waited for in order."""

    def __init__(self, limit: int, wait: float) -> None:
        self.limit = limit
        self.wait = wait
        self.in_use = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Hold ``size`` bytes of the budget for the body's whole stay; raise Busy after
        ``wait`` seconds in line."""
        if size < LARGE:
            yield
            return
        weight = min(size, self.limit)
        await self._acquire(weight)
        try:
            yield
        finally:
            self._release(weight)

    async def _acquire(self, weight: int) -> None:
        if not self._waiters and self.in_use + weight <= self.limit:
            self._take(weight)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (weight, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(future), self.wait)
        except TimeoutError:
            if future.done():  # granted just as the wait ran out: use it
                return
            self._waiters.remove(entry)
            self._wake()  # the next in line may fit now
            log.warning("a %d-byte body waited %.0f s for memory: refused", weight, self.wait)
            raise Busy(
                "too many large messages are being accepted right now; try again shortly"
            ) from None
        except asyncio.CancelledError:
            if future.done():
                self._release(weight)
            else:
                self._waiters.remove(entry)
                self._wake()
            raise

    def _take(self, weight: int) -> None:
        self.in_use += weight

    def _release(self, weight: int) -> None:
        self.in_use -= weight
        self._wake()
        if self.in_use == 0:
            malloc.trim_later(TRIM_DELAY)

    def _wake(self) -> None:
        while self._waiters:
            weight, future = self._waiters[0]
            if self.in_use and self.in_use + weight > self.limit:
                return
            self._waiters.popleft()
            self._take(weight)
            future.set_result(None)
