"""argon2 password hashes, computed off the event loop under one budget per process.

argon2 is slow and memory-hungry on purpose (about 0.1-0.2 s and 64 MiB per check), so hashing
and checking run in worker threads, at most ``CONCURRENCY`` at a time for console users and
relay users together; at most ``MAX_WAITING`` more wait for a slot, and any beyond that are
refused with :class:`PasswordsBusy` at once instead of queueing without end (a flood of guesses
must not take the CPU, memory or everyone's latency). An unknown user costs the same as a wrong
password, so timing does not tell which user names exist.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

import argon2

from gateway.errors import Unavailable

log = logging.getLogger(__name__)

CONCURRENCY = 4
MAX_WAITING = 64
BUSY_RETRY_SECONDS = 5

T = TypeVar("T")


class PasswordsBusy(Unavailable):
    """Too many password checks waiting: answer "try again shortly" without checking."""

    code = "busy"

    def __init__(self) -> None:
        super().__init__("too many password checks in progress: try again in a few seconds")
        self.retry_after = BUSY_RETRY_SECONDS


class Passwords:
    """Hash and check passwords in threads, within one concurrency and queue budget."""

    def __init__(
        self,
        hasher: argon2.PasswordHasher | None = None,
        concurrency: int = CONCURRENCY,
        max_waiting: int = MAX_WAITING,
    ) -> None:
        self.hasher = hasher or argon2.PasswordHasher()
        self.concurrency = concurrency
        self.max_waiting = max_waiting
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._queued = 0  # running or waiting for a slot
        self._dummy: str | None = None

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # one shared instance; a semaphore belongs to one loop
            self._loop, self._slots, self._queued = loop, asyncio.Semaphore(self.concurrency), 0
        if self._queued >= self.concurrency + self.max_waiting:
            log.warning("password checks: %d in progress, refusing one more", self._queued)
            raise PasswordsBusy
        self._queued += 1
        try:
            async with self._slots:
                return await asyncio.to_thread(work, *args)
        finally:
            self._queued -= 1

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    def _check(self, stored: str, password: str) -> tuple[bool, str | None]:
        """(matches, new hash if the stored one uses old parameters); runs in a thread."""
        try:
            self.hasher.verify(stored, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False, None
        if self.hasher.check_needs_rehash(stored):
            return True, self.hasher.hash(password)
        return True, None

    async def verify(self, stored: str | None, password: str) -> tuple[bool, str | None]:
        """(right password, new hash to store or None); ``stored`` None: an unknown user, which
        costs as much as a wrong password. Raises :class:`PasswordsBusy` when overloaded."""
        if stored is None:
            if self._dummy is None:
                self._dummy = await self.hash("not a password: equal time for unknown users")
            stored = self._dummy
            password = password + "\x00unknown"
        return await self._run(self._check, stored, password)


# One per process: console and relay share the CPU, so they share the budget.
PASSWORDS = Passwords()
