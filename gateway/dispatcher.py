"""The dispatcher: claims due deliveries, sends them through their channel, records outcomes.

PostgreSQL is the queue. A claim leases deliveries to this node (``FOR UPDATE SKIP LOCKED``);
if the node dies, the lease runs out and any node takes them again (at-least-once). The
dispatcher sleeps until NOTIFY (or an in-process poke) says there is work, or until the next
delivery falls due, polling at ``poll_seconds`` as the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from gateway import malloc
from gateway.accounts import Accounts
from gateway.backoff import retry_delay
from gateway.batching import Batcher
from gateway.bodies import LARGE
from gateway.channel import AccountRef, Channel, Failed, Outcome, Outgoing, Retry, Sent
from gateway.config import Settings
from gateway.events import DeliveryEvent
from gateway.model import ClaimedDelivery, EventRow, Finished
from gateway.plugins import Plugins
from gateway.ratelimit import LocalRateLimiter, RateLimiter
from gateway.store import Store

log = logging.getLogger(__name__)


def default_node_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


MIN_DEFERRAL = 0.05  # a slot closer than this is taken now

PrepareOutgoing = Callable[[ClaimedDelivery, Outgoing], Awaitable[Outgoing]]


class Deferred(msgspec.Struct, frozen=True):
    """Not an attempt: a rate limit's slot for this delivery is at ``until``."""

    until: dt.datetime
    key: str


class Dispatcher:
    """One per process; run it with ``await dispatcher.run()``, stop it with ``stop()``."""

    def __init__(
        self,
        store: Store,
        plugins: Plugins,
        accounts: Accounts,
        settings: Settings,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.store = store
        self.plugins = plugins
        self.accounts = accounts
        self.settings = settings
        self.limiter: RateLimiter = limiter or LocalRateLimiter()
        self.node = settings.node_name or default_node_name()
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task] = set()
        self._bytes_in_flight = 0  # bodies of the deliveries being sent (settings.body_memory)
        self._stopping = False
        self._finisher: Batcher[Finished, list[EventRow]] = Batcher(self._flush, 500)
        self._sandbox: Batcher[ClaimedDelivery, None] = Batcher(self._record_sandbox, 500)
        # A seam for ingress-specific content, e.g. the SMTP relay's original MIME (outgoing.raw)
        self.prepare_outgoing: PrepareOutgoing | None = None

    def poke(self) -> None:
        """There may be new work: claim now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        unlisten = None
        try:
            unlisten = await self.store.listen(self.poke)
        except Exception as exc:  # polling still guarantees progress
            log.warning("LISTEN failed (%r); falling back to polling", exc)
        try:
            while not self._stopping:
                await self._cycle()
        finally:
            if unlisten is not None:
                await unlisten()

    async def _cycle(self) -> None:
        free = self.settings.dispatch_concurrency - len(self._in_flight)
        free_bytes = self.settings.body_memory - self._bytes_in_flight
        if free <= 0 or free_bytes <= 0:
            await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
            return
        self._wake.clear()
        try:
            claimed = await self.store.claim(
                min(free, self.settings.dispatch_batch),
                self.node,
                self.settings.lease_seconds,
                free_bytes,
            )
        except Exception as exc:
            log.warning("claiming deliveries failed: %r; retrying after a pause", exc)
            await self._sleep(min(self.settings.poll_seconds, 2.0))
            return
        for delivery in claimed:
            task = asyncio.create_task(self._deliver(delivery))
            self._in_flight.add(task)
            self._bytes_in_flight += delivery.size
            task.add_done_callback(functools.partial(self._done, delivery.size))
        if len(claimed) == min(free, self.settings.dispatch_batch) or (
            self._bytes_in_flight >= self.settings.body_memory
        ):
            return  # there is probably more: claim again as soon as slots allow
        await self._sleep(await self._until_next_due())

    def _done(self, size: int, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        self._bytes_in_flight -= size
        if size >= LARGE and self._bytes_in_flight < LARGE:
            malloc.trim_later()  # large bodies were sent: give their memory back

    async def _until_next_due(self) -> float:
        poll = self.settings.poll_seconds
        try:
            due = await self.store.next_due()
        except Exception:
            return poll
        if due is None:
            return poll
        wait = (due - dt.datetime.now(dt.UTC)).total_seconds()
        return min(poll, max(0.01, wait))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, let sends in flight finish (up to ``grace`` seconds), flush outcomes."""
        self._stopping = True
        self._wake.set()
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=grace)
        for task in self._in_flight:
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._finisher.close()
        await self._sandbox.close()

    # -- one delivery ----------------------------------------------------------------------

    async def _deliver(self, d: ClaimedDelivery) -> None:
        started = time.monotonic()
        try:
            outcome = await self._attempt(d)
        except Exception as exc:  # our bug or a plugin's: never lose the delivery over it
            log.exception("delivery %s: unexpected error", d.id)
            outcome = Retry(reason=f"internal error: {exc!r}")
        finished = self._finished(d, outcome, time.monotonic() - started)
        try:
            events = await self._finisher.submit(finished)
        except Exception as exc:
            log.warning(
                "delivery %s: recording the outcome failed (%r); the lease will"
                " expire and it will be tried again",
                d.id,
                exc,
            )
            return
        for e in events:
            self.plugins.delivery_event(
                DeliveryEvent(str(e.delivery_id), str(d.message_id), e.kind, e.at, e.detail)
            )

    async def _attempt(self, d: ClaimedDelivery) -> Outcome | Deferred:
        if d.account_id is None:
            return Failed(reason=f"account {d.account_name!r} was deleted")
        resolved = await self.accounts.resolve(d.account_id, d.account_revision)
        if resolved is None:
            return Failed(reason=f"account {d.account_name!r} was deleted")
        row, ref = resolved
        channel = self.plugins.channel(row.channel)
        if channel is None and not row.sandbox:
            return Retry(reason=f"channel {row.channel!r} is not loaded on node {self.node}")
        options: Any = d.options
        if channel is not None and channel.options_type is not None:
            options = msgspec.convert(d.options, channel.options_type)
        outgoing = Outgoing(
            delivery_id=str(d.id),
            message_id=str(d.message_id),
            recipient=d.recipient,
            subject=d.subject,
            text=d.body_text,
            html=d.body_html,
            variables=d.variables,
            attempt=d.attempts,
            template=d.template,
            options=options,
        )
        if self.prepare_outgoing is not None:
            outgoing = await self.prepare_outgoing(d, outgoing)
        blocked = self.plugins.filter_outgoing(d.channel, d.account_name, outgoing)
        if blocked is not None:
            return blocked
        if row.sandbox:
            await self._sandbox.submit(d)
            return Sent(provider_id=f"sandbox:{d.id}", units=1, answer="recorded in the sandbox")
        assert channel is not None
        deferred = await self._pace(channel, ref, outgoing, d)
        if deferred is not None:
            return deferred
        return await self._send(channel, ref, outgoing)

    async def _pace(
        self, channel: Channel, ref: AccountRef, outgoing: Outgoing, d: ClaimedDelivery
    ) -> Deferred | None:
        """Reserve rate-limit slots; a slot in the future defers the delivery until then."""
        if d.slot_at is not None and d.slot_at <= dt.datetime.now(dt.UTC):
            return None  # it was deferred to a slot it already owns
        wait, key = 0.0, ""
        for limit in channel.rate_limits(ref, outgoing):
            seconds = await self.limiter.reserve(limit.key, limit.limit, limit.per_seconds)
            if seconds > wait:
                wait, key = seconds, limit.key
        if wait < MIN_DEFERRAL:
            return None
        return Deferred(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait), key)

    async def _send(self, channel: Channel, ref: AccountRef, outgoing: Outgoing) -> Outcome:
        timeout = self.settings.lease_seconds * 0.8
        try:
            outcome = await asyncio.wait_for(channel.send(ref, outgoing), timeout)
        except TimeoutError:
            return Retry(reason=f"channel {channel.name!r} did not answer within {timeout:.0f}s")
        if not isinstance(outcome, Sent | Retry | Failed):
            return Retry(
                reason=f"channel {channel.name!r} returned {type(outcome).__name__}, not an Outcome"
            )
        return outcome

    def _finished(
        self, d: ClaimedDelivery, outcome: Outcome | Deferred, seconds: float
    ) -> Finished:
        took = {"attempt": d.attempts, "node": self.node, "ms": round(seconds * 1000)}
        if isinstance(outcome, Deferred):
            return Finished(
                d.id,
                d.attempts,
                "queued",
                "deferred",
                {"rate_limit": outcome.key, "until": outcome.until.isoformat()},
                due_at=outcome.until,
            )
        if isinstance(outcome, Sent):
            return Finished(
                d.id,
                d.attempts,
                "sent",
                "sent",
                {
                    **took,
                    "provider_id": outcome.provider_id,
                    "answer": outcome.answer,
                    "units": outcome.units,
                },
                provider_id=outcome.provider_id,
                units=outcome.units,
            )
        if isinstance(outcome, Failed):
            return Finished(
                d.id,
                d.attempts,
                "failed",
                "failed",
                {**took, "code": outcome.code, "reason": outcome.reason},
                code=outcome.code,
                error=outcome.reason,
            )
        s = self.settings
        if d.attempts >= s.max_attempts:
            reason = f"gave up after {d.attempts} attempts: {outcome.reason}"
            return Finished(
                d.id,
                d.attempts,
                "failed",
                "failed",
                {**took, "code": outcome.code, "reason": reason},
                code=outcome.code,
                error=reason,
            )
        delay = retry_delay(d.attempts, s.retry_base_seconds, s.retry_max_seconds, outcome.after)
        due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay)
        return Finished(
            d.id,
            d.attempts,
            "retrying",
            "retrying",
            {
                **took,
                "code": outcome.code,
                "reason": outcome.reason,
                "next_attempt_at": due.isoformat(),
            },
            due_at=due,
            code=outcome.code,
            error=outcome.reason,
        )

    async def _record_sandbox(self, batch: list[ClaimedDelivery]) -> list[None]:
        await self.store.record_sandbox_many(batch)
        return [None] * len(batch)

    async def _flush(self, batch: list[Finished]) -> list[list[EventRow]]:
        events: dict[uuid.UUID, list[EventRow]] = {}
        for e in await self.store.finish(batch):
            events.setdefault(e.delivery_id, []).append(e)
        if any(f.status == "retrying" for f in batch):
            self.poke()
        return [events.get(f.id, []) for f in batch]
