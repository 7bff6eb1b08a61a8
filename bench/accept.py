"""Durable accept throughput: POST /api/v1/messages on msggate versus a bare aiohttp handler.

Both servers run as subprocesses, one after the other, each as one process on the event loop
policy of gateway/cli.py (uvloop when installed), loaded by the same generator with the same
settings. The gateway runs against a real PostgreSQL (a database created for the run and
dropped after) and answers 202 only once a message is committed (group commit).

    .venv/bin/python bench/accept.py [--duration 10] [--connections 64] [--recipients 1]
                                     [--no-dispatcher] [--threads 1] [--warmup 2]

The load generator is wrk (Debian package ``wrk``) with a Lua script; without wrk, an aiohttp
client in this process (which eats some of the CPU being measured: the figures are lower).

Both servers are started once; then ``--rounds`` rounds each load the bare server, then the
gateway, so slow drifts of this shared machine hit both alike (the figures are the medians).
With the dispatcher on (default, as ``msggate serve`` runs), it sends the accepted messages to
the sandbox in the same process while the load runs, and after each gateway run the backlog is
left to drain before the next round, so it never steals CPU from the bare server.

Printed: msg/s of each, the ratio, latency p50/p99, CPU used by each process, the average group
commit (messages per transaction: every message of one transaction has the same ``created_at``,
the transaction's start, so distinct ``created_at`` values count the transactions) and a
durability check: every message id answered with 202 is in the database, and the number
committed equals the number of 202s plus at most the requests still in flight when the
generator stopped (committed, but wrk closed the connection before reading the answer).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    DEFAULT_PG,
    PYTHON,
    Gateway,
    Proc,
    cpu_seconds,
    fmt,
    free_port,
    gateway_info,
    machine_cpu,
    postgres_cpu,
    postgres_cpu_since,
    temp_database,
    temp_dir,
    wait_port,
    wait_quiet,
)

PATH = "/api/v1/messages"

LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local template = [==[%(body)s]==]

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  ok, other, n = 0, 0, 0
  parts = {}  -- the body around each "@@N@@", replaced per request: every recipient is new
  local from = 1
  while true do
    local i, j = string.find(template, "@@N@@", from, true)
    if not i then break end
    table.insert(parts, string.sub(template, from, i - 1))
    from = j + 1
  end
  table.insert(parts, string.sub(template, from))
  ids = io.open("%(ids)s" .. tid .. ".txt", "w")
end

function request()
  n = n + 1
  return wrk.format(nil, nil, nil, table.concat(parts, tid .. "-" .. n))
end

-- count the 202s (wrk itself only counts non-2xx/3xx) and keep each answer's message id
function response(status, headers, body)
  if status == 202 then
    ok = ok + 1
    ids:write(string.sub(body, 8, 43), "\n")
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local ok_total, other_total = 0, 0
  for _, t in ipairs(threads) do
    ok_total = ok_total + t:get("ok")
    other_total = other_total + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%%d,"ok":%%d,"other":%%d,"duration_us":%%d,"p50_us":%%d,' ..
    '"p99_us":%%d,"max_us":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\n',
    summary.requests, ok_total, other_total, summary.duration, latency:percentile(50),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class Load:
    """What one load run saw."""

    requests: int
    ok: int  # 202 answers
    other: int  # other HTTP statuses
    errors: int  # socket errors and timeouts
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    ids: list[str] = field(default_factory=list)
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


PLACEHOLDER = b"@@N@@"


def message_body(recipients: int) -> bytes:
    """The message, with ``@@N@@`` in each recipient where each request puts a new number, so
    no two messages go to the same address (no cache of addresses flatters the gateway)."""
    return json.dumps(
        {
            "channel": "email",
            "account": "sandbox",
            "recipients": [f"rcpt{i}-@@N@@@example.com" for i in range(recipients)],
            "subject": "accept benchmark",
            "text": "Hello from bench/accept.py: one message, committed before the 202.",
        },
        separators=(",", ":"),
    ).encode()


def run_wrk(
    url: str,
    key: str,
    body: bytes,
    seconds: float,
    connections: int,
    threads: int,
    workdir: Path,
    tag: str,
) -> Load:
    ids_prefix = workdir / f"ids-{tag}-"
    script = workdir / f"post-{tag}.lua"
    script.write_text(
        LUA % {"body": body.decode(), "key": key, "ids": str(ids_prefix)}, encoding="utf-8"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url + PATH,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    r = json.loads(line.removeprefix("BENCH_JSON "))
    ids: list[str] = []
    for path in sorted(workdir.glob(f"ids-{tag}-*.txt")):
        if path.name.removeprefix(f"ids-{tag}-").removesuffix(".txt").isdigit():
            ids += path.read_text().split()
    return Load(
        requests=r["requests"],
        ok=r["ok"],
        other=r["other"],
        errors=r["connect"] + r["read"] + r["write"] + r["timeout"],
        seconds=r["duration_us"] / 1e6,
        p50_ms=r["p50_us"] / 1e3,
        p99_ms=r["p99_us"] / 1e3,
        max_ms=r["max_us"] / 1e3,
        ids=ids,
        client_cpu=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


def run_aiohttp(url: str, key: str, body: bytes, seconds: float, connections: int) -> Load:
    """Fallback generator (no wrk): ``connections`` workers, each one request at a time."""
    import aiohttp

    async def go() -> Load:
        latencies: list[float] = []
        ids: list[str] = []
        counts = {"ok": 0, "other": 0, "errors": 0}
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(limit=connections)
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            start = time.monotonic()
            deadline = start + seconds

            async def worker(w: int) -> None:
                n = 0
                while time.monotonic() < deadline:
                    n += 1
                    data = body.replace(PLACEHOLDER, f"{w}-{n}".encode())
                    t0 = time.monotonic()
                    try:
                        async with http.post(url + PATH, data=data, headers=headers) as resp:
                            raw = await resp.read()
                            if resp.status == 202:
                                counts["ok"] += 1
                                ids.append(raw[7:43].decode())
                            else:
                                counts["other"] += 1
                    except (aiohttp.ClientError, TimeoutError):
                        counts["errors"] += 1
                        continue
                    latencies.append(time.monotonic() - t0)

            await asyncio.gather(*(worker(w) for w in range(connections)))
            elapsed = time.monotonic() - start
        latencies.sort()

        def pct(p: float) -> float:
            return (
                latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1e3
                if latencies
                else 0.0
            )

        return Load(
            requests=counts["ok"] + counts["other"],
            ok=counts["ok"],
            other=counts["other"],
            errors=counts["errors"],
            seconds=elapsed,
            p50_ms=pct(0.5),
            p99_ms=pct(0.99),
            max_ms=latencies[-1] * 1e3 if latencies else 0.0,
            ids=ids,
        )

    from gateway.cli import _event_loop_policy

    _event_loop_policy()
    cpu0 = time.process_time()
    load = asyncio.run(go())
    load.client_cpu = time.process_time() - cpu0
    return load


@dataclass
class Measured:
    load: Load
    server_cpu: float
    pg_cpu: float
    other_cpu: float  # everything else on the machine (other users' jobs, kernel), in CPU-s
    steal: float  # CPU-s the hypervisor took


def measure(
    pid: int, args: argparse.Namespace, url: str, key: str, body: bytes, workdir: Path, tag: str
) -> Measured:
    """One load run against the server ``pid``, with the CPU it and PostgreSQL used."""
    if args.quiet_wait > 0:
        busy = wait_quiet(args.quiet_wait)
        if busy >= 0.3:
            print(
                f"  note: the machine is busy ({busy:.0%} of a core in use by others) before"
                f" {tag}: its figures are disturbed",
                flush=True,
            )
    cpu0, pg0, (busy0, steal0) = cpu_seconds(pid), postgres_cpu(), machine_cpu()
    if args.generator == "wrk":
        load = run_wrk(url, key, body, args.duration, args.connections, args.threads, workdir, tag)
    else:
        load = run_aiohttp(url, key, body, args.duration, args.connections)
    server, pg, (busy1, steal1) = cpu_seconds(pid) - cpu0, postgres_cpu_since(pg0), machine_cpu()
    other = max(0.0, (busy1 - busy0) - server - pg - load.client_cpu)
    return Measured(load, server, pg, other, steal1 - steal0)


def warm(
    args: argparse.Namespace, url: str, key: str, body: bytes, workdir: Path, tag: str
) -> None:
    if args.warmup <= 0:
        return
    if args.generator == "wrk":
        run_wrk(url, key, body, args.warmup, args.connections, args.threads, workdir, tag)
    else:
        run_aiohttp(url, key, body, args.warmup, args.connections)


# -- the database side of a gateway round ----------------------------------------------------


@dataclass
class Round:
    bare: Measured
    gw: Measured
    committed: int  # messages committed from the start of the gateway run (after settling)
    transactions: int  # distinct created_at (= transaction start) among them
    biggest: int  # the largest group commit
    sent: int  # deliveries the dispatcher completed during the gateway run
    acked: int  # 202-answered message ids (parsed)
    acked_found: int  # ... of which are in the database
    backlog: int  # deliveries still pending when the run ended
    drain_seconds: float  # time the dispatcher then took to clear them (alone)
    drained: bool

    @property
    def ratio(self) -> float:
        return self.gw.load.rate / self.bare.load.rate if self.bare.load.rate else 0.0

    @property
    def in_flight(self) -> int:
        return self.committed - self.gw.load.ok


async def _connect(database_url: str):
    import asyncpg

    return await asyncpg.connect(database_url)


async def _now(database_url: str) -> object:
    conn = await _connect(database_url)
    try:
        return await conn.fetchval("SELECT clock_timestamp()")
    finally:
        await conn.close()


async def _settle(database_url: str, limit: float = 15.0) -> None:
    """Wait until the message count stops moving (requests in flight at the cut-off commit)."""
    conn = await _connect(database_url)
    try:
        last, stable_since, deadline = -1, time.monotonic(), time.monotonic() + limit
        while time.monotonic() < deadline:
            n = await conn.fetchval("SELECT count(*) FROM messages")
            if n != last:
                last, stable_since = n, time.monotonic()
            elif time.monotonic() - stable_since > 0.7:
                return
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


PENDING = "SELECT count(*) FROM deliveries WHERE status IN ('queued', 'sending', 'retrying')"


async def _drain(database_url: str, limit: float) -> tuple[int, float, bool]:
    """Wait (at most ``limit`` s) until the dispatcher has no delivery left to do."""
    conn = await _connect(database_url)
    try:
        start = time.monotonic()
        backlog = await conn.fetchval(PENDING)
        pending = backlog
        while pending and time.monotonic() - start < limit:
            await asyncio.sleep(0.1)
            pending = await conn.fetchval(PENDING)
        return backlog, time.monotonic() - start, pending == 0
    finally:
        await conn.close()


async def _figures(database_url: str, t0: object, t1: object, ids: list[str]) -> tuple:
    conn = await _connect(database_url)
    try:
        committed, transactions, biggest = await conn.fetchrow(
            "SELECT count(*), count(DISTINCT created_at), coalesce(max(n), 0) FROM"
            " (SELECT created_at, count(*) OVER (PARTITION BY created_at) AS n"
            "  FROM messages WHERE created_at >= $1) m",
            t0,
        )
        sent = await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE status = 'sent'"
            " AND finished_at >= $1 AND finished_at <= $2",
            t0,
            t1,
        )
        parsed = []
        for text in ids:
            try:
                parsed.append(uuid.UUID(text))
            except ValueError:
                continue
        found = await conn.fetchval(
            "SELECT count(*) FROM messages WHERE id = ANY($1::uuid[])", parsed
        )
        return committed, transactions, biggest, sent, len(parsed), found
    finally:
        await conn.close()


def gateway_round(
    args: argparse.Namespace,
    gw: Gateway,
    body: bytes,
    workdir: Path,
    database_url: str,
    bare: Measured,
    n: int,
) -> Round:
    t0 = asyncio.run(_now(database_url))
    m = measure(gw.pid, args, gw.url, gw.api_key, body, workdir, f"gw{n}")
    t1 = asyncio.run(_now(database_url))
    asyncio.run(_settle(database_url))
    committed, transactions, biggest, sent, acked, found = asyncio.run(
        _figures(database_url, t0, t1, m.load.ids)
    )
    backlog, drain_s, drained = 0, 0.0, True
    if args.dispatcher:
        backlog, drain_s, drained = asyncio.run(_drain(database_url, args.drain_timeout))
    return Round(
        bare, m, committed, transactions, biggest, sent, acked, found, backlog, drain_s, drained
    )


# -- report ----------------------------------------------------------------------------------


def _detail(name: str, m: Measured, unit: str) -> str:
    ld = m.load
    return (
        f"    {name:<8} {fmt(ld.rate):>7} {unit}  p50 {ld.p50_ms:5.1f} ms  p99 {ld.p99_ms:6.1f} ms"
        f"  CPU: server {m.server_cpu / ld.seconds:4.0%}, postgres {m.pg_cpu / ld.seconds:4.0%},"
        f" client {ld.client_cpu / ld.seconds:4.0%}, others {m.other_cpu / ld.seconds:4.0%}"
        + (f", stolen {m.steal / ld.seconds:4.0%}" if m.steal > 0.05 * ld.seconds else "")
        + f"  ({ld.ok:,} ok, {ld.other} other,"
        f" {ld.errors} errors)\n"
        f"             CPU per answer: server {_us_each(m.server_cpu, ld.ok):.0f} µs"
        + (f", postgres {_us_each(m.pg_cpu, ld.ok):.0f} µs" if m.pg_cpu > 0.01 * ld.seconds else "")
    )


def _us_each(cpu_seconds: float, count: int) -> float:
    """CPU microseconds per answer (0 when there was none)."""
    return 1e6 * cpu_seconds / count if count else 0.0


def report(args: argparse.Namespace, rounds: list[Round], policy: str, where: str) -> bool:
    ok_all = True
    print()
    print(
        f"settings: {args.rounds} round(s) of {args.duration:g} s per server,"
        f" {args.connections} connections, {args.recipients} recipient(s)/message,"
        f" generator {args.generator}"
        + (f" -t{args.threads}" if args.generator == "wrk" else " (in this process: eats CPU)")
        + f"; loop {policy}; gateway code {where}; {os.cpu_count()} cores shared by server,"
        " PostgreSQL and generator"
    )
    if args.dispatcher:
        print(
            "dispatcher: ON, in the gateway process (sandbox account), as `msggate serve` runs;"
            " --no-dispatcher to measure accept alone"
        )
    else:
        print("dispatcher: OFF (--no-dispatcher): accepted deliveries stay queued")
    for i, r in enumerate(rounds, 1):
        g = r.gw.load
        print(
            f"round {i}: bare {fmt(r.bare.load.rate)} req/s, msggate {fmt(g.rate)} msg/s,"
            f" ratio {r.ratio:.2f}"
        )
        print(_detail("bare", r.bare, "req/s"))
        print(_detail("msggate", r.gw, "msg/s"))
        avg = r.committed / r.transactions if r.transactions else 0.0
        print(
            f"    group commit: {r.committed:,} messages in {r.transactions:,} transactions,"
            f" {avg:.1f} per commit on average, largest {r.biggest}"
        )
        if args.dispatcher:
            rate = r.backlog / r.drain_seconds if r.drain_seconds else 0.0
            print(
                f"    dispatcher: {fmt(r.sent / g.seconds)} deliveries/s sent during the run;"
                + (
                    " it kept up (no backlog)"
                    if not r.backlog
                    else f" backlog {r.backlog:,}, drained alone afterwards in"
                    f" {r.drain_seconds:.1f} s ({fmt(rate)}/s)"
                    if r.drained
                    else f" backlog {r.backlog:,}, NOT drained within {args.drain_timeout:g} s"
                )
            )
        ok = r.acked == g.ok and r.acked_found == r.acked and 0 <= r.in_flight <= args.connections
        ok_all = ok_all and ok
        print(
            f"    durability: {g.ok:,} answered 202, {r.acked_found:,}/{r.acked:,} of their ids in"
            f" the database; committed {r.committed:,} = 202s + {r.in_flight} in flight when the"
            f" generator stopped (at most {args.connections}) -> {'OK' if ok else 'FAILED'}"
        )
    saturated = [
        name
        for r in rounds
        for name, m in (("bare", r.bare), ("msggate", r.gw))
        if m.load.client_cpu >= 0.9 * m.load.seconds * args.threads
    ]
    if saturated:
        print(
            f"WARNING: the load generator used a whole core during {len(saturated)} run(s)"
            f" ({', '.join(sorted(set(saturated)))}): those rates are capped by the client,"
            " not the server, and the ratio is flattered"
            + (" (install wrk)" if args.generator != "wrk" else " (try --threads 2)")
        )
    bare_rate = statistics.median(r.bare.load.rate for r in rounds)
    gw_rate = statistics.median(r.gw.load.rate for r in rounds)
    ratio = statistics.median(r.ratio for r in rounds)
    p50 = statistics.median(r.gw.load.p50_ms for r in rounds)
    p99 = statistics.median(r.gw.load.p99_ms for r in rounds)
    committed = sum(r.committed for r in rounds)
    transactions = sum(r.transactions for r in rounds)
    bare_us = statistics.median(_us_each(r.bare.server_cpu, r.bare.load.ok) for r in rounds)
    gw_us = statistics.median(_us_each(r.gw.server_cpu, r.gw.load.ok) for r in rounds)
    print()
    print(
        f"server CPU per answer: bare {bare_us:.0f} µs, msggate {gw_us:.0f} µs ="
        f" {bare_us / gw_us if gw_us else 0:.2f} (median; the ratio the rates would have if each"
        " server process were the only limit: steadier than the rates on a shared machine)"
    )
    print(
        f"accept: msggate {fmt(gw_rate)} msg/s vs bare {fmt(bare_rate)} req/s = {ratio:.2f}"
        f"  (median of {len(rounds)}; msggate p50 {p50:.1f} ms p99 {p99:.1f} ms;"
        f" {committed / max(1, transactions):.1f} msg/commit; dispatcher"
        f" {'on' if args.dispatcher else 'off'}; durability {'OK' if ok_all else 'FAILED'})"
    )
    return ok_all


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (10)")
    parser.add_argument("--connections", type=int, default=64, help="concurrent connections (64)")
    parser.add_argument("--recipients", type=int, default=1, help="recipients per message (1)")
    parser.add_argument("--rounds", type=int, default=3, help="bare/msggate alternations (3)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up load (2)")
    parser.add_argument(
        "--no-dispatcher",
        dest="dispatcher",
        action="store_false",
        help="run the gateway without its dispatcher (default: on, as `msggate serve` runs)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=180.0,
        help="longest wait for the dispatcher's backlog after a run (180 s)",
    )
    parser.add_argument(
        "--generator",
        choices=("wrk", "aiohttp"),
        default=None,
        help="load generator (default: wrk if installed, else aiohttp)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before each run, wait up to this long for other jobs on the machine to calm (60 s)",
    )
    parser.add_argument("--pg", default=DEFAULT_PG, help="admin URL of the PostgreSQL server")
    args = parser.parse_args()
    if not 0 < args.duration <= 600 or not 0 <= args.warmup <= 60 or not 1 <= args.rounds <= 20:
        parser.error("--duration in (0, 600], --warmup in [0, 60], --rounds 1-20")
    if not 1 <= args.connections <= 1024 or not 1 <= args.recipients <= 1000:
        parser.error("--connections 1-1024, --recipients 1-1000")
    if args.generator is None:
        args.generator = "wrk" if shutil.which("wrk") else "aiohttp"
        if args.generator == "aiohttp":
            print("wrk not found (apt-get install wrk): falling back to an aiohttp client")
    body = message_body(args.recipients)
    policy, where = gateway_info()
    print(f"gateway code: {where}; event loop: {policy}", flush=True)
    rounds: list[Round] = []
    with temp_dir("msggate-bench-accept-") as workdir, temp_database(args.pg) as database_url:
        bare_port = free_port()
        bare = Proc(
            "bare", [PYTHON, str(BENCH_DIR / "bare_server.py"), "--port", str(bare_port)], workdir
        )
        gw = None
        try:
            gw = Gateway(database_url, workdir, dispatcher=args.dispatcher)
            bare.wait_output(r"^listening on", 30)
            wait_port(bare_port, 30, bare.proc)
            bare_url = f"http://127.0.0.1:{bare_port}"
            gw.wait_ready()
            status, answer = gw.request("POST", PATH, json.loads(body.replace(PLACEHOLDER, b"0-0")))
            if status != 202:
                raise RuntimeError(f"the gateway refused the benchmark message: {status} {answer}")
            print(f"warm-up {args.warmup:g} s each ...", flush=True)
            warm(args, bare_url, "bare", body, workdir, "bare-warm")
            warm(args, gw.url, gw.api_key, body, workdir, "gw-warm")
            asyncio.run(_settle(database_url))
            if args.dispatcher:
                asyncio.run(_drain(database_url, args.drain_timeout))
            for n in range(1, args.rounds + 1):
                print(
                    f"round {n}/{args.rounds}: bare {args.duration:g} s, msggate"
                    f" {args.duration:g} s ...",
                    flush=True,
                )
                b = measure(bare.pid, args, bare_url, "bare", body, workdir, f"bare{n}")
                rounds.append(gateway_round(args, gw, body, workdir, database_url, b, n))
        finally:
            if gw is not None:
                gw.stop()
            bare.stop()
    return 0 if report(args, rounds, policy, where) else 1


if __name__ == "__main__":
    sys.exit(main())
