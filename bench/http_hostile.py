"""One hostile address against the HTTP side: does an authenticated caller elsewhere notice?

    .venv/bin/python bench/http_hostile.py [--duration 10] [--idle 600] [--hammer 64]

Starts ``msggate serve`` (a fresh database, dropped afterwards; default limits), then measures
an authenticated client on 127.0.0.2 calling ``GET /api/v1/accounts`` one call after another,
first alone, then while 127.0.0.1 holds ``--idle`` idle connections (the issue's 600) and runs
``--hammer`` loops of requests with made-up API keys (in a process of its own). Printed: the
victim's latency (p50/p99/max) and failures in both phases, and what the attacker's requests
and connections were answered. Bounded: each phase lasts ``--duration`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import HOST, Gateway, temp_database, temp_dir

VICTIM = "127.0.0.2"


async def victim(url: str, key: str, duration: float) -> tuple[list[float], int]:
    connector = aiohttp.TCPConnector(local_addr=(VICTIM, 0))
    headers = {"Authorization": f"Bearer {key}"}
    timings, failures = [], 0
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        end = time.monotonic() + duration
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                async with http.get(url + "/api/v1/accounts") as answer:
                    await answer.read()
                    failures += answer.status != 200
            except aiohttp.ClientError:
                failures += 1
            timings.append(time.monotonic() - started)
    return timings, failures


async def hammer(url: str, duration: float, answers: Counter) -> None:
    connector = aiohttp.TCPConnector(local_addr=(HOST, 0), limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        end = time.monotonic() + duration
        while time.monotonic() < end:
            headers = {"Authorization": f"Bearer mg_{secrets.token_urlsafe(16)}"}
            try:
                async with http.get(url + "/api/v1/accounts", headers=headers) as answer:
                    await answer.read()
                    answers[answer.status] += 1
            except aiohttp.ClientError:
                answers["error"] += 1
                await asyncio.sleep(0.01)


async def idle_connections(port: int, count: int, answers: Counter) -> list:
    held = []
    for _ in range(count):
        try:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(HOST, 0))
        except OSError:
            answers["connect failed"] += 1
            continue
        held.append((reader, writer))
    await asyncio.sleep(0.5)
    for reader, _ in held:  # refused ones were answered at once and closed
        if reader.at_eof() or reader._buffer:
            line = bytes(reader._buffer).split(b"\r\n", 1)[0]
            answers[line.decode(errors="replace") or "closed"] += 1
        else:
            answers["held open"] += 1
    return held


def summary(name: str, timings: list[float], failures: int) -> str:
    ms = sorted(t * 1000 for t in timings)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return (
        f"{name:>14}: {len(ms)} calls, p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, "
        f"max {ms[-1]:.1f} ms, {failures} not 200"
    )


async def attacker(url: str, port: int, args: argparse.Namespace) -> None:
    """The attack, in a process of its own (its CPU must not slow the victim's client)."""
    connections: Counter = Counter()
    requests: Counter = Counter()
    held = await idle_connections(port, args.idle, connections)
    try:
        await asyncio.gather(*[hammer(url, args.duration, requests) for _ in range(args.hammer)])
    finally:
        for _, writer in held:
            writer.close()
    print(f"attacker's {args.idle} idle connections: {dict(connections)}")
    print(f"attacker's requests with made-up keys: {dict(requests)}")


def attack(gateway: Gateway, args: argparse.Namespace) -> None:
    alone = asyncio.run(victim(gateway.url, gateway.api_key, args.duration))
    command = [sys.executable, __file__, "--attacker", gateway.url, str(gateway.port)]
    command += ["--duration", str(args.duration + 2), "--idle", str(args.idle)]
    command += ["--hammer", str(args.hammer)]
    other = subprocess.Popen(command)
    try:
        time.sleep(2)  # its idle connections open first
        attacked = asyncio.run(victim(gateway.url, gateway.api_key, args.duration))
        other.wait(timeout=args.duration + 60)
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
    print(summary("alone", *alone))
    print(summary("under attack", *attacked))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--idle", type=int, default=600)
    parser.add_argument("--hammer", type=int, default=64)
    parser.add_argument("--attacker", nargs=2, metavar=("URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attacker:
        asyncio.run(attacker(args.attacker[0], int(args.attacker[1]), args))
        return
    with temp_database() as url, temp_dir("msggate-hostile-") as workdir:
        gateway = Gateway(url, workdir, dispatcher=False)
        try:
            gateway.wait_ready()
            attack(gateway, args)
        finally:
            gateway.stop()


if __name__ == "__main__":
    main()
