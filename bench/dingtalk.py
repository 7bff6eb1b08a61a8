"""Deliveries per second to the fake DingTalk robot: through msggate versus the plugin's client.

    .venv/bin/python bench/dingtalk.py [--deliveries 4000] [--concurrency 64] [--runs 3]
                                       [--robots 1] [--recipients 1] [--warmup 300]

Three processes on this machine: the fake DingTalk (``msggate fake-providers``, which mounts it
at ``/dingtalk``), the gateway (``msggate serve`` with its dispatcher, against a database created
for the run and dropped after) and this one. Each run has two phases, one after the other:

- **gateway**: ``--deliveries`` deliveries (messages of ``--recipients`` recipients each) are
  POSTed to ``/api/v1/messages`` by ``--concurrency`` connections; the figure is deliveries the
  fake robot accepted (``errcode 0``, signature checked) per second, from the first POST until
  the last delivery reached the fake. The gateway dispatches ``--concurrency`` sends at a time
  (``MSGGATE_DISPATCH_CONCURRENCY``).
- **client**: the same number of deliveries sent by the plugin's own ``DingTalkRobotChannel``
  straight to the fake from this process, ``--concurrency`` in flight: the ceiling the gateway's
  durable queue (PostgreSQL commit, claim, outcome) is measured against.

Both sign every post (HMAC-SHA256, a secret robot) and carry a fresh ``msgUuid``. A real robot
takes 20 posts a minute; for the benchmark the fake's per-robot limit and the account's
``per_minute`` (the rate the gateway paces to) are both raised to 1,000,000 a minute, on
``--robots`` robots (one account each; messages go round-robin). Each phase of each run uses
robots of its own. Printed: each run's figures, then the median of the runs and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DEFAULT_PG,
    PYTHON,
    Gateway,
    Proc,
    cpu_seconds,
    fmt,
    free_port,
    gateway_info,
    postgres_cpu,
    postgres_cpu_since,
    temp_database,
    temp_dir,
    wait_port,
)

RAISED_PER_MINUTE = 1_000_000
SECRET = "SECbench0f9d8c7b6a5e4d3c2b1a09f8e7d6c5b4a3"
TEXT = "bench/dingtalk.py: disk full on db-1 (95%)"
DONE_TIMEOUT = 300.0


@dataclass
class Phase:
    """What one phase measured."""

    deliveries: int
    seconds: float
    accept_seconds: float = 0.0  # gateway: until the last POST was answered
    own_cpu: float = 0.0  # this process (load generator / client)
    gateway_cpu: float = 0.0
    fake_cpu: float = 0.0
    pg_cpu: float = 0.0
    failures: int = 0

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds if self.seconds else 0.0


class Bench:
    """The running fake and gateway, and how to reach them."""

    def __init__(self, args: argparse.Namespace, fake: Proc, fake_url: str, gw: Gateway):
        self.args = args
        self.fake = fake
        self.fake_url = fake_url  # the robot endpoint: http://127.0.0.1:PORT/dingtalk
        self.gw = gw

    def recipients(self, n: int) -> list[str]:
        if self.args.recipients == 1:
            return ["group"]
        return [f"138{n % 100:02d}{i:06d}" for i in range(self.args.recipients)]

    async def fake_ok(self, http) -> int:
        async with http.get(f"{self.fake_url}/_fake/state") as response:
            return (await response.json())["counts"].get("robot_ok", 0)

    async def add_robots(self, http, tag: str) -> list[str]:
        tokens = [f"bench-{tag}-{i}-{uuid.uuid4().hex[:8]}" for i in range(self.args.robots)]
        for token in tokens:
            spec = {"access_token": token, "secret": SECRET, "per_minute": RAISED_PER_MINUTE}
            async with http.post(f"{self.fake_url}/_fake/robots", json=spec) as response:
                assert response.status == 201, await response.text()
        return tokens

    def account_config(self, token: str) -> dict:
        return {
            "access_token": token,
            "secret": SECRET,
            "endpoint": self.fake_url,
            "per_minute": RAISED_PER_MINUTE,
        }


# -- the client phase: the plugin's channel straight to the fake ------------------------------


async def client_phase(bench: Bench, http, deliveries: int, tag: str) -> Phase:
    from gateway.channel import AccountRef, Outgoing, Sent
    from plugins.dingtalk.account import RobotAccount
    from plugins.dingtalk.robot import DingTalkRobotChannel

    tokens = await bench.add_robots(http, tag)
    refs = [
        AccountRef(f"bench-{i}", 1, RobotAccount(**bench.account_config(t)))
        for i, t in enumerate(tokens)
    ]
    recipients = bench.recipients(0)
    jobs = [
        (refs[(n // len(recipients)) % len(refs)], recipients[n % len(recipients)])
        for n in range(deliveries)
    ]
    channel = DingTalkRobotChannel()
    failures = 0
    queue = iter(jobs)

    async def worker() -> None:
        nonlocal failures
        for ref, recipient in queue:
            outgoing = Outgoing(
                delivery_id=str(uuid.uuid4()),
                message_id=str(uuid.uuid4()),
                recipient=recipient,
                text=TEXT,
            )
            if not isinstance(await channel.send(ref, outgoing), Sent):
                failures += 1

    before = await bench.fake_ok(http)
    cpu = _cpu(bench)
    start = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(bench.args.concurrency)))
        seconds = time.perf_counter() - start
    finally:
        await channel.close()
    used = _cpu_used(bench, cpu)
    arrived = await bench.fake_ok(http) - before
    if arrived != deliveries - failures:
        raise RuntimeError(f"client phase: {arrived} posts arrived, expected {deliveries}")
    return Phase(arrived, seconds, failures=failures, **used)


# -- the gateway phase: POST /api/v1/messages, dispatcher, fake --------------------------------


async def gateway_phase(bench: Bench, http, deliveries: int, tag: str) -> Phase:
    tokens = await bench.add_robots(http, tag)
    accounts = []
    for i, token in enumerate(tokens):
        name = f"bench-{tag}-{i}"
        status, body = await asyncio.to_thread(
            bench.gw.request,
            "POST",
            "/api/v1/accounts",
            {"channel": "dingtalk_robot", "name": name, "config": bench.account_config(token)},
        )
        if status != 201:
            raise RuntimeError(f"the gateway refused the robot account: {status} {body}")
        accounts.append(name)
    per_message = bench.args.recipients
    messages = [
        {
            "channel": "dingtalk_robot",
            "account": accounts[n % len(accounts)],
            "recipients": bench.recipients(n),
            "text": TEXT,
        }
        for n in range(deliveries // per_message)
    ]
    expected = len(messages) * per_message
    headers = {"Authorization": f"Bearer {bench.gw.api_key}"}
    url = bench.gw.url + "/api/v1/messages"
    queue = iter(messages)
    refused: list[str] = []

    async def worker() -> None:
        for message in queue:
            async with http.post(url, json=message, headers=headers) as response:
                if response.status != 202:
                    refused.append(f"{response.status} {await response.text()}")
                await response.read()

    before = await bench.fake_ok(http)
    cpu = _cpu(bench)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(bench.args.concurrency)))
    accept_seconds = time.perf_counter() - start
    if refused:
        raise RuntimeError(f"{len(refused)} POSTs refused, e.g. {refused[0]}")
    deadline = start + DONE_TIMEOUT
    while (arrived := await bench.fake_ok(http) - before) < expected:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {arrived} of {expected} deliveries in {DONE_TIMEOUT}s")
        await asyncio.sleep(0.01)
    seconds = time.perf_counter() - start
    used = _cpu_used(bench, cpu)
    return Phase(arrived, seconds, accept_seconds=accept_seconds, **used)


# -- CPU ----------------------------------------------------------------------------------------


def _cpu(bench: Bench) -> tuple[float, float, float, dict[int, float]]:
    return (
        time.process_time(),
        cpu_seconds(bench.gw.pid),
        cpu_seconds(bench.fake.pid),
        postgres_cpu(),
    )


def _cpu_used(bench: Bench, before: tuple) -> dict[str, float]:
    own, gw, fake, pg = before
    return {
        "own_cpu": time.process_time() - own,
        "gateway_cpu": cpu_seconds(bench.gw.pid) - gw,
        "fake_cpu": cpu_seconds(bench.fake.pid) - fake,
        "pg_cpu": postgres_cpu_since(pg),
    }


# -- runs and report ----------------------------------------------------------------------------


async def run_all(bench: Bench) -> list[tuple[Phase, Phase]]:
    import aiohttp

    args = bench.args
    connector = aiohttp.TCPConnector(limit=args.concurrency + 8)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:
        if args.warmup:
            print(f"warm-up: {args.warmup} deliveries each way ...", flush=True)
            await client_phase(bench, http, args.warmup, "warm-c")
            await gateway_phase(bench, http, args.warmup, "warm-g")
        results = []
        for run in range(1, args.runs + 1):
            client = await client_phase(bench, http, args.deliveries, f"c{run}")
            gateway = await gateway_phase(bench, http, args.deliveries, f"g{run}")
            print(f"run {run}:", flush=True)
            print(line("client", client))
            print(line("gateway", gateway))
            print(f"  ratio    {gateway.rate / client.rate:.2f}", flush=True)
            results.append((client, gateway))
        return results


def line(name: str, p: Phase) -> str:
    def share(cpu: float) -> str:
        return f"{cpu / p.seconds:4.0%}"

    extra = (
        f"  (POSTs answered in {p.accept_seconds:.2f} s = {fmt(p.deliveries / p.accept_seconds)}"
        " msg/s)"
        if p.accept_seconds
        else ""
    )
    return (
        f"  {name:<8} {fmt(p.rate):>7} deliveries/s  {p.deliveries:,} in {p.seconds:.2f} s"
        f"  | CPU: this process {share(p.own_cpu)}, gateway {share(p.gateway_cpu)},"
        f" fake {share(p.fake_cpu)}, postgres {share(p.pg_cpu)}{extra}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=4000, help="per phase and run (4000)")
    parser.add_argument("--concurrency", type=int, default=64, help="sends/POSTs in flight (64)")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is reported (3)")
    parser.add_argument("--robots", type=int, default=1, help="robot accounts per phase (1)")
    parser.add_argument("--recipients", type=int, default=1, help="recipients per message (1)")
    parser.add_argument("--warmup", type=int, default=300, help="warm-up deliveries (300)")
    parser.add_argument("--pg", default=DEFAULT_PG, help="admin URL of the PostgreSQL server")
    args = parser.parse_args()
    if not 1 <= args.concurrency <= 1024 or not 1 <= args.runs <= 20:
        parser.error("--concurrency 1-1024, --runs 1-20")
    if not 1 <= args.robots <= 1000 or not 1 <= args.recipients <= 100:
        parser.error("--robots 1-1000, --recipients 1-100")
    if args.deliveries < args.recipients or not 0 <= args.warmup <= 100_000:
        parser.error("--deliveries must be at least --recipients; --warmup 0-100000")
    policy, gateway_dir = gateway_info()
    print(f"gateway code: {gateway_dir}; event loop: {policy}", flush=True)
    from gateway.cli import _event_loop_policy

    _event_loop_policy()  # the client phase runs on the gateway's loop policy too
    os.environ.pop("MSGGATE_REDIS_URL", None)  # rate limits in process, as without Redis
    os.environ["MSGGATE_DISPATCH_CONCURRENCY"] = str(args.concurrency)
    with temp_dir("msggate-bench-dingtalk-") as workdir, temp_database(args.pg) as database_url:
        port = free_port()
        fake = Proc(
            "fake",
            [PYTHON, "-m", "gateway.cli", "fake-providers", "--port", str(port)],
            workdir,
        )
        gw: Gateway | None = None
        try:
            fake.wait_output(r"^\s*dingtalk\s+http://", 60)
            wait_port(port, 30, fake.proc)
            gw = Gateway(database_url, workdir)
            gw.wait_ready()
            bench = Bench(args, fake, f"http://127.0.0.1:{port}/dingtalk", gw)
            print(
                f"settings: {args.deliveries:,} deliveries per phase, {args.runs} runs,"
                f" concurrency {args.concurrency} (client sends in flight = gateway"
                f" dispatch_concurrency = POST connections), {args.robots} robot(s) per phase,"
                f" {args.recipients} recipient(s)/message, fake and account limit raised to"
                f" {RAISED_PER_MINUTE:,}/min, signed posts; 2 cores shared by every process",
                flush=True,
            )
            results = asyncio.run(run_all(bench))
        finally:
            if gw is not None:
                gw.stop()
            fake.stop()
    client = statistics.median(c.rate for c, _ in results)
    gateway = statistics.median(g.rate for _, g in results)
    ratio = statistics.median(g.rate / c.rate for c, g in results)
    print()
    print(
        f"dingtalk robot, median of {len(results)} runs: gateway {fmt(gateway)} deliveries/s"
        f" vs client {fmt(client)} deliveries/s = {ratio:.2f}"
        f" (concurrency {args.concurrency}, {args.robots} robot(s), limit raised)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
