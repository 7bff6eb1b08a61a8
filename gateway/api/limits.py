"""Per-address budgets for HTTP callers not known by a valid API key.

Requests that carry no key this node already knows to be valid (console pages, provider
callbacks, bad or missing keys, garbage) take one of ``max_concurrent`` slots of their
address while they run (until their key proves valid), queueing briefly for one; an address
whose requests were refused 401/403 ``max_failures`` times within ``window`` seconds is
answered 429 before any work (no database look-up) until the oldest of those refusals leaves
the window. A caller with a valid key that this node has seen in the last seconds passes both,
so hammering from one address never takes request slots or database time from authenticated
callers elsewhere. The console's own refusals under ``uncounted`` (a wrong password, a role's
403) are left to its login throttle; ``pages`` answer the 429 in a front end's own way.

The address is the caller's as the access list sees it (``X-Forwarded-For`` only from a
proxy in ``MSGGATE_TRUSTED_PROXIES``); an IPv6 caller counts by its /64, which one host
usually holds whole.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence

from aiohttp import web

from gateway.relay.access import Address, Network, client_address

log = logging.getLogger(__name__)

FAILED = frozenset({401, 403})
QUEUE_SECONDS = 5.0  # how long a request may queue for one of its address's slots
MAX_ADDRESSES = 100_000  # failure windows kept; past this the expired ones are dropped

Key = Address | ipaddress.IPv6Network | None


def address_key(address: Address | None) -> Key:
    if isinstance(address, ipaddress.IPv6Address):
        return ipaddress.IPv6Network((address, 64), strict=False)
    return address


class TooMany(Exception):
    """An address is over a budget; ``retry_after`` seconds until it may try again."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.address = ""  # the caller's, as counted (set by RequestLimits.screen)


Refusal = Callable[[web.Request, TooMany], web.StreamResponse]


class RequestLimits:
    """The per-address budgets of one process (they protect this process's slots)."""

    def __init__(
        self,
        max_concurrent: int,
        max_failures: int,
        window: float,
        trusted_proxies: Sequence[Network] = (),
        uncounted: str | None = None,
        pages: Mapping[str, Refusal] | None = None,
    ) -> None:
        self.max_concurrent = max_concurrent
        self.uncounted = uncounted
        self.pages = dict(pages or {})  # path prefix -> its own 429 (the console: its language)
        self.max_failures = max_failures
        self.window = window
        self.trusted_proxies = tuple(trusted_proxies)
        self.running: dict[Key, int] = {}  # slots held
        self.waiting: dict[Key, deque[asyncio.Future[None]]] = {}
        self.failures: dict[Key, deque[float]] = {}

    def caller(self, request: web.Request) -> Address | None:
        return client_address(
            request.remote, request.headers.getall("X-Forwarded-For", []), self.trusted_proxies
        )

    def check_failures(self, key: Key) -> None:
        """Raise TooMany if ``key`` has used up its refusals in the window."""
        failures = self.failures.get(key)
        if failures is not None and len(failures) >= self.max_failures:
            wait = failures[0] + self.window - time.monotonic()
            if wait > 0:
                raise TooMany(
                    f"too many refused requests from your address ({len(failures)} in "
                    f"{self.window:.0f} s): wait before trying again",
                    wait,
                )

    async def enter(self, key: Key) -> None:
        """Take one of ``key``'s slots, queueing up to QUEUE_SECONDS for one (a burst from a
        client whose key this node has not checked yet passes in a moment); TooMany if the wait
        runs out."""
        running = self.running.get(key, 0)
        if running < self.max_concurrent and not self.waiting.get(key):
            self.running[key] = running + 1
            return
        # The queue needs no bound of its own: each waiter holds a connection, and those are
        # capped per address (gateway.api.connections).
        queue = self.waiting.setdefault(key, deque())
        turn = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            await asyncio.wait({turn}, timeout=QUEUE_SECONDS)
        except BaseException:  # the request itself was cancelled while it queued
            if turn.done():
                self.leave(key)  # the slot was handed over just now: pass it on
            raise
        finally:
            if not turn.done():
                turn.cancel()  # leave() skips it
            if turn in queue:
                queue.remove(turn)
            if not queue:
                self.waiting.pop(key, None)
        if not turn.cancelled():
            return  # leave() handed its slot over: already counted
        raise TooMany(
            f"your address already has {running} requests without a valid API key running, "
            "the most one address may: wait for them to finish",
            1,
        )

    def leave(self, key: Key) -> None:
        """Give a slot back, to the first request queueing for one if there is one."""
        for turn in self.waiting.get(key, ()):
            if not turn.done():
                turn.set_result(None)
                return
        left = self.running.get(key, 1) - 1
        if left > 0:
            self.running[key] = left
        else:
            self.running.pop(key, None)

    def _failed(self, key: Key) -> None:
        now = time.monotonic()
        if key not in self.failures and len(self.failures) >= MAX_ADDRESSES:
            self._forget(now)
        window = self.failures.get(key)
        if window is None:
            window = self.failures[key] = deque(maxlen=self.max_failures)
        filling = len(window) == self.max_failures - 1  # warn once, not at every refusal
        window.append(now)
        if filling and window[0] + self.window >= now:
            log.warning(
                "%s: %d requests refused within %.0f s: answering it 429 for a while",
                key,
                self.max_failures,
                self.window,
            )

    def _forget(self, now: float) -> None:
        """Drop the windows whose newest refusal has left them; if that frees nothing (a
        refusal flood from that many addresses), start over rather than grow without end."""
        for key in [k for k, w in self.failures.items() if w[-1] + self.window < now]:
            del self.failures[key]
        if len(self.failures) >= MAX_ADDRESSES:
            log.warning("%d addresses with refused requests: forgetting them", MAX_ADDRESSES)
            self.failures.clear()

    async def screen(
        self,
        request: web.Request,
        known: bool,
        answer: Callable[[], Awaitable[web.StreamResponse]],
        refuse: Refusal,
    ) -> web.StreamResponse:
        """``answer()`` within the caller's budgets, or ``refuse(TooMany)`` (a 429).

        ``known``: the request carries an API key this node knows to be valid. A request whose
        key proves valid while it runs gives its slot back then (:func:`key_checked`).
        """
        if known:
            return await answer()
        key = address_key(self.caller(request))
        try:
            self.check_failures(key)
            await self.enter(key)
            try:
                self.check_failures(key)  # again: others may have failed while it queued
            except TooMany:
                self.leave(key)
                raise
        except TooMany as exc:  # not logged: a flood must not become a flood of log lines
            exc.address = str(key or "unknown")
            pages = (p for prefix, p in self.pages.items() if request.path.startswith(prefix))
            return next(pages, refuse)(request, exc)
        request[_SLOT] = slot = _Slot(self, key)
        status = 500
        try:
            response = await answer()
            status = response.status
            return response
        except web.HTTPException as exc:  # redirects and the like, raised through
            status = exc.status
            raise
        finally:
            slot.release()
            uncounted = self.uncounted and request.path.startswith(self.uncounted)
            if status in FAILED and not uncounted:
                self._failed(key)


class _Slot:
    """A request's hold on one of its address's slots, given back once."""

    def __init__(self, limits: RequestLimits, key: Key) -> None:
        self.limits = limits
        self.key = key
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.limits.leave(self.key)


_SLOT = web.RequestKey("limits_slot", _Slot)


def key_checked(request: web.Request) -> None:
    """The request's API key proved valid: it needs no slot of the unauthenticated any more."""
    slot = request.get(_SLOT)
    if slot is not None:
        slot.release()


REQUEST_LIMITS = web.AppKey("request_limits", RequestLimits)


def retry_after(exc: TooMany) -> str:
    return str(max(1, math.ceil(exc.retry_after)))
