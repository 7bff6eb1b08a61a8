"""Group commit: many concurrent callers share one flush (one transaction) of their items."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


def _not_a_timeout(exc: BaseException) -> bool:
    """By default any error may be one item's, or a blip the smaller flushes get past; not a
    timeout: with a hung database each piece would wait as long again."""
    return not isinstance(exc, TimeoutError)


class Batcher(Generic[T, R]):
    """Collects submitted items and flushes them together.

    There is no timer: while one flush runs, new items queue up and go out together in the
    next, so batches grow with load and a lone caller waits for nothing. ``flush`` returns one
    result (or exception) per item, in order.

    If a whole flush raises an error that ``splittable`` says may be one item's fault (bad data,
    not a database that is down), the batch is split in halves and each is flushed again: one
    bad item costs about 2·log2(n) flushes, not n, and fails alone with that error. Any other
    error fails the whole batch at once (retrying it piece by piece would only multiply the
    wait). The accept path splits only for data errors; the default splits for anything but a
    timeout. An item whose caller stopped waiting before its flush began is dropped.
    """

    def __init__(
        self,
        flush: Flush,
        max_batch: int = 500,
        flushers: int = 2,
        splittable: Callable[[BaseException], bool] = _not_a_timeout,
    ) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._splittable = splittable
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._run()) for _ in range(flushers)]
        self.batches = 0  # flushes, counting those of split batches
        self.items = 0

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch:
                await self._flush_batch(batch)
            del batch  # no local keeps the last batch (its items and results) alive while idle

    async def _next_batch(self) -> list[tuple[T, asyncio.Future[R]]]:
        """The next batch, waiting for its first item; callers that gave up are left out (their
        deadline passed, so they were told to try again: not committed). Maybe empty."""
        batch = [await self._queue.get()]
        while len(batch) < self._max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return [entry for entry in batch if not entry[1].done()]

    async def _flush_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        refused: list[BaseException] = []
        flushes = self.batches
        try:
            await self._flush_part(batch, refused)
        except asyncio.CancelledError:  # closing mid-split: no caller may wait for ever
            for _, future in batch:
                future.cancel()
            raise
        if refused:  # one line per batch, however many items it held
            log.warning(
                "a batch of %d held %d item(s) that could not be stored (first: %s);"
                " isolated them in %d flushes",
                len(batch),
                len(refused),
                refused[0],
                self.batches - flushes,
            )

    async def _flush_part(
        self, batch: list[tuple[T, asyncio.Future[R]]], refused: list[BaseException]
    ) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = await self._flush([item for item, _ in batch])
        except Exception as exc:
            if not self._splittable(exc):
                results = [exc] * len(batch)
            elif len(batch) == 1:
                refused.append(exc)
                results = [exc]
            else:
                half = len(batch) // 2
                await self._flush_part(batch[:half], refused)
                await self._flush_part(batch[half:], refused)
                return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def close(self) -> None:
        """Stop flushing; callers still waiting get CancelledError."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while not self._queue.empty():
            _, future = self._queue.get_nowait()
            future.cancel()
