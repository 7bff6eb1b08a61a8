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


class Batcher(Generic[T, R]):
    """Collects submitted items and flushes them together.

    There is no timer: while one flush runs, new items queue up and go out together in the
    next, so batches grow with load and a lone caller waits for nothing. ``flush`` returns one
    result (or exception) per item, in order. If a whole flush raises, its items are retried
    one by one so a single bad item fails alone.
    """

    def __init__(self, flush: Flush, max_batch: int = 500, flushers: int = 2) -> None:
        self._flush = flush
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._run()) for _ in range(flushers)]
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def _run(self) -> None:
        while True:
            # no local keeps the last batch (its items and results) alive while idle
            await self._flush_batch(await self._next_batch())

    async def _next_batch(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch = [await self._queue.get()]
        while len(batch) < self._max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _flush_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches += 1
        self.items += len(batch)
        try:
            results = await self._flush([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:
            if len(batch) == 1:
                results = [exc]
            else:
                log.warning("a batch of %d failed (%r); retrying one by one", len(batch), exc)
                for one in batch:
                    await self._flush_batch([one])
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
