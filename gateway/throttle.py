"""Brute-force limits for passwords (console login, SMTP AUTH), shared by every node.

Each attempt is counted *before* its password is checked, in one atomic UPSERT ... RETURNING
on three counters in PostgreSQL (table ``auth_attempts``), each over a fixed window of
``Limits.window`` seconds from its first attempt:

- the user from this address: ``per_user_address`` failures, then that user waits *from this
  address* only; the same user elsewhere and other users here are not held up;
- this address: ``per_address`` failures (larger, for many people behind one NAT), then every
  name from here waits (an IPv6 address counts as its /64);
- the user from anywhere: ``per_user`` failures; past it the user is still checked once per
  window from each address that has not tried it yet, so its owner gets in from a clean address
  while a guesser is held to one try per address.

An attempt over a budget is refused without any hash check and takes its counts back, so
refusals cost nothing and never use up someone else's budget; a right password takes its counts
back and clears its (user, address) counter, so only failures stay counted. Therefore N
parallel guesses on any number of nodes check at most the budget. A failed check is answered
after a delay that doubles with each failure of the (user, address) pair. No account is locked.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.store import UNAVAILABLE, Store

log = logging.getLogger(__name__)

PRUNE_CHANCE = 0.01  # of attempts that also delete counters whose window has passed
MAX_NAME = 200  # characters of a user name that are counted (longer names exist nowhere)

# Which budget refused an attempt (TooManyAttempts.limit).
USER_ADDRESS = "user_address"
ADDRESS = "address"
USER = "user"


@dataclass(frozen=True)
class Limits:
    """Budgets of failed attempts per window (settings ``auth_*``); delays of failed answers."""

    window: float
    per_user_address: int
    per_address: int
    per_user: int
    base_delay: float = 0.25  # the first failure's answer waits this, each next one twice that
    max_delay: float = 4.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            window=settings.auth_window_seconds,
            per_user_address=settings.auth_failures_per_user_address,
            per_address=settings.auth_failures_per_address,
            per_user=settings.auth_failures_per_user,
        )


class TooManyAttempts(GatewayError):
    """Refused before checking: ``limit`` (which budget) is used up for ``retry_after`` s."""

    status = 429
    code = "too_many_attempts"

    def __init__(self, limit: str, retry_after: float) -> None:
        minutes = int(retry_after // 60) + 1
        whom = {
            USER_ADDRESS: "for this user from this address",
            ADDRESS: "from this address",
            USER: "for this user",
        }[limit]
        super().__init__(f"too many failed attempts {whom}: try again in {minutes} minutes", "name")
        self.limit = limit
        self.retry_after = retry_after


def _where(address: str) -> str:
    """The counted address: an IPv6 address stands for its /64, which one host usually has
    whole (counting single addresses there would let it try from 2**64 "clean" ones)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return _text(address) or "unknown"
    if ip.version == 6 and ip.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


def _text(value: str) -> str:
    # What PostgreSQL text can hold: no NUL, no lone surrogates.
    return value[:MAX_NAME].replace("\x00", "\ufffd").encode("utf-8", "replace").decode()


class Attempt:
    """One counted attempt: tell it how the check went with ``succeeded`` or ``failed``."""

    def __init__(self, throttle: Throttle, keys: list[tuple[str, str]], failures: int) -> None:
        self._throttle = throttle
        self._keys = keys
        self._failures = failures  # of the (user, address) pair, this attempt included
        self.settled = False

    @property
    def delay(self) -> float:
        """How long to wait before answering this attempt as failed."""
        limits = self._throttle.limits
        return min(limits.max_delay, limits.base_delay * 2 ** (self._failures - 1))

    async def succeeded(self) -> None:
        """The password was right: take the counts back and clear the pair."""
        self.settled = True
        await self._throttle.release(self._keys, clear_pair=True)

    async def failed(self) -> None:
        """The password was wrong: the counts stay; wait the growing delay."""
        self.settled = True
        await asyncio.sleep(self.delay)


class Throttle:
    """The three budgets of one front end (``scope``: "console" or "smtp")."""

    def __init__(self, store: Store, scope: str, limits: Limits | None = None) -> None:
        self.store = store
        self.scope = scope
        self.limits = limits or Limits.from_settings(Settings())

    @contextlib.asynccontextmanager
    async def attempt(self, user: str, address: str) -> AsyncIterator[Attempt]:
        """Count an attempt of ``user`` from ``address`` and yield it for the password check,
        or raise :class:`TooManyAttempts` without checking. Should the check itself fail (the
        database, a busy server), the attempt is taken back: it was no guess."""
        # An empty name must not be the per-address counter ('' stands for "any user").
        user, address = _text(user) or "\ufffd", _where(address)
        pair, by_address, by_user = (user, address), ("", address), (user, "")
        keys = [pair, by_address, by_user]
        limits = self.limits
        counts = await self.store.count_attempt(self.scope, keys, limits.window)
        over = []
        if counts[pair][0] > limits.per_user_address:
            over.append((USER_ADDRESS, counts[pair][1]))
        if counts[by_address][0] > limits.per_address:
            over.append((ADDRESS, counts[by_address][1]))
        if counts[by_user][0] > limits.per_user and counts[pair][0] > 1:
            over.append((USER, min(counts[by_user][1], counts[pair][1])))
        if random.random() < PRUNE_CHANCE:
            await self.store.prune_attempts(limits.window)
        if over:
            await self.release(keys, clear_pair=False)
            limit, wait = max(over, key=lambda o: o[1])
            log.warning(
                "%s: attempt of %r from %s refused (%s budget used up for %.0fs)",
                self.scope,
                user,
                address,
                limit,
                wait,
            )
            raise TooManyAttempts(limit, max(1.0, wait))
        attempt = Attempt(self, keys, counts[pair][0])
        try:
            yield attempt
        except Exception:
            if not attempt.settled:
                await self.release(keys, clear_pair=False)
            raise

    async def release(self, keys: list[tuple[str, str]], clear_pair: bool) -> None:
        try:
            await self.store.release_attempt(self.scope, keys, clear_pair)
        except UNAVAILABLE as exc:  # the counts stay: stricter for a while, never looser
            log.warning("%s: could not take an attempt back: %r", self.scope, exc)
