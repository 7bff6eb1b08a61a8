"""Slowing down password guessing: failed SMTP AUTH is remembered per client address.

Each failure from an address within ``window`` seconds makes the next 535 wait longer
(``base_delay`` doubling up to ``max_delay``); from ``lockout_after`` failures on, AUTH from that
address is refused with 454 (try later) without checking anything until the failures age out.
State is per node and in memory: losing it only forgets who guessed.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque

log = logging.getLogger(__name__)


class AuthThrottle:
    """Failed AUTH per client address: the delay to answer with, and whether to refuse."""

    def __init__(
        self,
        window: float = 900.0,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        lockout_after: int = 10,
        max_addresses: int = 100_000,
    ) -> None:
        self.window = window
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.lockout_after = lockout_after
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures

    def locked(self, address: str) -> bool:
        """True if AUTH from ``address`` is refused for now."""
        failures = self._recent(address, time.monotonic())
        return failures is not None and len(failures) >= self.lockout_after

    def failed(self, address: str) -> float:
        """Record a failure; return how many seconds to wait before answering it."""
        now = time.monotonic()
        failures = self._recent(address, now)
        if failures is None:
            failures = self._failures[address] = deque(maxlen=self.lockout_after)
            while len(self._failures) > self.max_addresses:  # forget the quietest first
                self._failures.popitem(last=False)
        self._failures.move_to_end(address)
        failures.append(now)
        if len(failures) >= self.lockout_after:
            log.warning("relay AUTH from %s refused for now: %d failures", address, len(failures))
        return min(self.max_delay, self.base_delay * 2 ** (len(failures) - 1))
