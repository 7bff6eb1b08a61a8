"""Good messages' group-commit throughput while other callers keep sending bad ones.

Concurrent callers submit prepared messages straight to the accept path's group commit (as if
the edge validation had let bad text through), in three phases of ``--duration`` seconds each:
only good messages; good ones plus a stream of messages with a NUL character (which PostgreSQL
cannot store in text or jsonb); good ones plus a stream that only PostgreSQL refuses (an
out-of-range number, found by running the statement). Runs in one process against a database
created for the run and dropped after; short and bounded.

    .venv/bin/python bench/poison.py [--duration 3] [--good 32] [--bad 8]

Printed per phase: good messages committed per second, their latency p50/p99, the bad ones
refused, and the flushes (statements tried) and items flushed per good message committed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import DEFAULT_PG, fmt, temp_database

from gateway.database import open_pool
from gateway.messages import MessageService
from gateway.migrate import migrate
from gateway.model import NewMessage, uuid7
from gateway.store import Store


def message(text: str = "hello", account_id: int = 1) -> NewMessage:
    return NewMessage(
        id=uuid7(),
        channel="email",
        account_id=account_id,
        account_name="bench",
        recipients=["a@example.com"],
        delivery_ids=[uuid7()],
        subject="poison bench",
        text=text,
        html=None,
        variables={},
        ingress="http",
        ingress_detail={},
        idempotency_scope=None,
        idempotency_key=None,
        request_hash=None,
        send_at=None,
    )


BAD = {
    "none": None,
    "NUL": lambda: message(text="bad\x00text"),
    "out of range": lambda: message(account_id=2**70),
}


async def phase(service: MessageService, kind: str, duration: float, good: int, bad: int) -> str:
    make_bad = BAD[kind]
    latencies: list[float] = []
    refused = 0
    stop = time.monotonic() + duration
    batches, items = service._batcher.batches, service._batcher.items

    async def good_caller() -> None:
        while time.monotonic() < stop:
            started = time.monotonic()
            await service._batcher.submit(message())
            latencies.append(time.monotonic() - started)

    async def bad_caller() -> None:
        nonlocal refused
        while time.monotonic() < stop:
            try:
                await service._batcher.submit(make_bad())
            except Exception:  # the refusal (its type differs between versions)
                refused += 1

    callers = [good_caller() for _ in range(good)]
    if make_bad is not None:
        callers += [bad_caller() for _ in range(bad)]
    started = time.monotonic()
    await asyncio.gather(*callers)
    elapsed = time.monotonic() - started
    n = len(latencies)
    p = statistics.quantiles(latencies, n=100) if n > 1 else [0.0] * 99
    flushes = service._batcher.batches - batches
    flushed = service._batcher.items - items
    return (
        f"{kind:>12}: good {fmt(n / elapsed)}/s  p50 {fmt(p[49] * 1000, 1)} ms"
        f"  p99 {fmt(p[98] * 1000, 1)} ms  bad refused {refused}"
        f"  flushes/good {flushes / max(n, 1):.3f}  items flushed/good {flushed / max(n, 1):.2f}"
    )


async def run(url: str, args: argparse.Namespace) -> None:
    pool = await open_pool(url, 10)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        service = MessageService(Store(pool), None, 500)  # type: ignore[arg-type]
        try:
            for kind in BAD:
                print(await phase(service, kind, args.duration, args.good, args.bad), flush=True)
        finally:
            await service.close()
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--good", type=int, default=32, help="concurrent good callers")
    parser.add_argument("--bad", type=int, default=8, help="concurrent bad callers")
    parser.add_argument("--pg", default=DEFAULT_PG, help="admin URL of the PostgreSQL server")
    args = parser.parse_args()
    with temp_database(args.pg, "msggate_bench_poison") as url:
        asyncio.run(run(url, args))


if __name__ == "__main__":
    main()
