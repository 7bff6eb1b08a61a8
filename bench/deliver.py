"""Delivery throughput: msggate sending e-mail to a local SMTP sink, versus raw aiosmtplib.

    .venv/bin/python bench/deliver.py [--messages 5000] [--smtp-connections 4]
                                      [--post-concurrency 32] [--sink auto|smtp-sink|aiosmtpd]

1. An SMTP sink on a free port of 127.0.0.1: Postfix's ``smtp-sink`` (fast C; Debian package
   ``postfix``) or, without it, bench/smtp_sink.py (aiosmtpd, much slower: it may be the limit).
2. Baseline: raw aiosmtplib sends the same number of messages to the same sink over the same
   number of reused connections (one sequential sender per connection, messages of the same
   size as the gateway's, built by plain string formatting), on the gateway's event loop policy.
3. msggate: ``msggate serve`` (dispatcher on) against a fresh PostgreSQL database, an e-mail
   account (tls none, ``max_connections`` = the same number of connections) pointing at the
   sink, then N one-recipient messages POSTed concurrently; the clock runs from the first POST
   until every delivery is ``sent`` (polled in the database).

Printed: deliveries/s of each, the ratio, the accept phase, CPU shares, and the sink's count of
messages received as a cross-check.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH_DIR,
    DEFAULT_PG,
    HOST,
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

SENDER = "bench@example.com"
SUBJECT = "delivery benchmark"
TEXT = "Hello from bench/deliver.py: one message, one recipient, one SMTP transaction.\n"


# -- the sink --------------------------------------------------------------------------------


class Sink:
    """An SMTP sink subprocess; ``received()`` is its running count of messages."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.port = free_port()
        if kind == "smtp-sink":
            user = ["-u", "nobody"] if os.geteuid() == 0 else []  # it refuses to run as root
            args = ["smtp-sink", "-c", *user, f"{HOST}:{self.port}", "256"]
        else:
            args = [PYTHON, str(BENCH_DIR / "smtp_sink.py"), "--port", str(self.port)]
        self.kind = kind
        self.proc = Proc("sink", args, workdir)
        wait_port(self.port, 30, self.proc.proc)

    def received(self) -> int:
        found = re.findall(r"mesg=(\d+)", self.proc.stdout()[-4000:])
        return int(found[-1]) if found else 0

    def stop(self) -> None:
        self.proc.stop()


# -- baseline: raw aiosmtplib ----------------------------------------------------------------


def raw_message(i: int) -> bytes:
    """A plain text message with the headers the gateway writes (so sizes are comparable)."""
    date = dt.datetime.now(dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return (
        f"From: Bench <{SENDER}>\r\nTo: rcpt{i}@example.com\r\nSubject: {SUBJECT}\r\n"
        f"Date: {date}\r\nMessage-ID: <raw-{i}@example.com>\r\n"
        f"X-Msggate-Message-Id: raw-{i}\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: text/plain; charset="utf-8"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n'
        f"{TEXT}"
    ).encode()


@dataclass
class Baseline:
    messages: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def baseline(port: int, messages: int, connections: int) -> Baseline:
    import aiosmtplib

    async def sender(indexes: range) -> None:
        smtp = aiosmtplib.SMTP(hostname=HOST, port=port, use_tls=False, start_tls=False, timeout=30)
        await smtp.connect()
        try:
            for i in indexes:
                await smtp.sendmail(SENDER, [f"rcpt{i}@example.com"], raw_message(i))
        finally:
            await smtp.quit()

    async def go() -> float:
        start = time.monotonic()
        await asyncio.gather(*(sender(range(c, messages, connections)) for c in range(connections)))
        return time.monotonic() - start

    cpu0 = time.process_time()
    seconds = asyncio.run(go())
    return Baseline(messages, seconds, time.process_time() - cpu0)


# -- msggate ---------------------------------------------------------------------------------


@dataclass
class Run:
    messages: int
    accept_seconds: float  # first POST sent -> last 202 received
    seconds: float  # first POST sent -> every delivery sent
    sent: int
    failed: int
    refused: int  # POSTs not answered 202
    gateway_cpu: float
    pg_cpu: float
    client_cpu: float
    other_cpu: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


async def _wait_done(database_url: str, expected: int, limit: float) -> tuple[int, int, float]:
    """Poll until ``expected`` deliveries are sent or failed; (sent, failed, when) at the end."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + limit
        while True:
            sent, failed = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE status = 'sent'),"
                " count(*) FILTER (WHERE status = 'failed') FROM deliveries"
            )
            now = time.monotonic()
            if sent + failed >= expected or now > deadline:
                return sent, failed, now
            await asyncio.sleep(0.02)
    finally:
        await conn.close()


async def _post_all(
    gw: Gateway, first: int, count: int, concurrency: int, account: str
) -> tuple[int, float, float]:
    """POST ``count`` one-recipient messages; (refused, start, end of the last answer)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {gw.api_key}"}
    refused = 0
    next_index = iter(range(first, first + count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(
        gw.url, headers=headers, connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:

        async def worker() -> None:
            nonlocal refused
            for i in next_index:
                body = {
                    "channel": "email",
                    "account": account,
                    "recipients": [f"rcpt{i}@example.com"],
                    "subject": SUBJECT,
                    "text": TEXT,
                }
                async with http.post("/api/v1/messages", json=body) as resp:
                    await resp.read()
                    if resp.status != 202:
                        refused += 1

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return refused, start, time.monotonic()


def run_gateway(args: argparse.Namespace, gw: Gateway, database_url: str, sink: Sink) -> Run:
    async def go() -> tuple[int, float, float, int, int, float]:
        done = asyncio.create_task(
            _wait_done(database_url, args.messages + args.warmup, args.timeout)
        )
        refused, start, accepted = await _post_all(
            gw, args.warmup, args.messages, args.post_concurrency, "bench-smtp"
        )
        sent, failed, end = await done
        return refused, start, accepted, sent, failed, end

    cpu0, pg0, busy0 = cpu_seconds(gw.pid), postgres_cpu(), machine_cpu()[0]
    client0 = time.process_time()
    refused, start, accepted, sent, failed, end = asyncio.run(go())
    client = time.process_time() - client0
    gw_cpu, pg_cpu = cpu_seconds(gw.pid) - cpu0, postgres_cpu_since(pg0)
    other = max(0.0, machine_cpu()[0] - busy0 - gw_cpu - pg_cpu - client)
    return Run(
        args.messages,
        accepted - start,
        end - start,
        sent - args.warmup,
        failed,
        refused,
        gw_cpu,
        pg_cpu,
        client,
        other,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="messages to deliver (5000)")
    parser.add_argument(
        "--smtp-connections",
        type=int,
        default=4,
        help="SMTP connections: the account's max_connections and the baseline's senders (4)",
    )
    parser.add_argument(
        "--post-concurrency", type=int, default=32, help="concurrent POSTs while enqueueing (32)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=50,
        help="messages sent through the gateway before the clock starts (50)",
    )
    parser.add_argument("--sink", choices=("auto", "smtp-sink", "aiosmtpd"), default="auto")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="longest wait for the deliveries (300 s)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="wait up to this long for other jobs on the machine to calm (60 s)",
    )
    parser.add_argument("--pg", default=DEFAULT_PG, help="admin URL of the PostgreSQL server")
    args = parser.parse_args()
    if not 1 <= args.messages <= 1_000_000 or not 1 <= args.smtp_connections <= 100:
        parser.error("--messages 1-1000000, --smtp-connections 1-100")
    if not 1 <= args.post_concurrency <= 1024 or not 0 <= args.warmup <= 10_000:
        parser.error("--post-concurrency 1-1024, --warmup 0-10000")
    kind = args.sink
    if kind == "auto":
        kind = "smtp-sink" if shutil.which("smtp-sink") else "aiosmtpd"
        if kind == "aiosmtpd":
            print(
                "smtp-sink not found (apt-get install postfix): using the aiosmtpd sink,"
                " which is slower and may be the bottleneck",
                flush=True,
            )
    policy, where = gateway_info()
    print(f"gateway code: {where}; event loop: {policy}; sink: {kind}", flush=True)

    from gateway.cli import _event_loop_policy

    _event_loop_policy()  # the baseline and this process's clients run like the gateway
    with temp_dir("msggate-bench-deliver-") as workdir, temp_database(args.pg) as database_url:
        sink = Sink(kind, workdir)
        gw = None
        try:
            # baseline
            if args.quiet_wait > 0:
                wait_quiet(args.quiet_wait)
            print(
                f"baseline: raw aiosmtplib, {args.messages:,} messages over"
                f" {args.smtp_connections} connections ...",
                flush=True,
            )
            before = sink.received()
            base = baseline(sink.port, args.messages, args.smtp_connections)
            base_received = sink.received() - before

            # msggate
            gw = Gateway(database_url, workdir, dispatcher=True)
            gw.wait_ready()
            status, answer = gw.request(
                "POST",
                "/api/v1/accounts",
                {
                    "channel": "email",
                    "name": "bench-smtp",
                    "config": {
                        "host": HOST,
                        "port": sink.port,
                        "tls": "none",
                        "from": f"Bench <{SENDER}>",
                        "max_connections": args.smtp_connections,
                    },
                },
            )
            if status != 201:
                raise RuntimeError(f"creating the account failed: {status} {answer}")
            if args.warmup:
                asyncio.run(_post_all(gw, 0, args.warmup, min(args.warmup, 8), "bench-smtp"))
                asyncio.run(_wait_done(database_url, args.warmup, 60))
            if args.quiet_wait > 0:
                wait_quiet(args.quiet_wait)
            print(
                f"msggate: {args.messages:,} messages POSTed {args.post_concurrency} at a time,"
                " clock until every delivery is sent ...",
                flush=True,
            )
            before = sink.received()
            run = run_gateway(args, gw, database_url, sink)
            time.sleep(0.2)
            gw_received = sink.received() - before
        finally:
            if gw is not None:
                gw.stop()
            sink.stop()

    size = len(raw_message(0))
    ok = run.sent == args.messages and run.failed == 0 and run.refused == 0
    print()
    print(
        f"settings: {args.messages:,} messages x 1 recipient, {args.smtp_connections} SMTP"
        f" connections, sink {kind} on 127.0.0.1, {os.cpu_count()} cores, loop {policy},"
        f" baseline message {size} bytes"
    )
    print(
        f"  raw aiosmtplib {fmt(base.rate):>7} msg/s  ({args.messages:,} in {base.seconds:.2f} s,"
        f" CPU {base.cpu / base.seconds:.0%}; sink counted {base_received:,})"
    )
    secs = run.seconds
    print(
        f"  msggate        {fmt(run.rate):>7} deliveries/s  ({run.sent:,} sent, {run.failed}"
        f" failed, {run.refused} refused, in {secs:.2f} s from the first POST; all accepted"
        f" after {run.accept_seconds:.2f} s = {fmt(args.messages / run.accept_seconds)} msg/s;"
        f" sink counted {gw_received:,})"
    )
    print(
        f"  CPU during the msggate run: gateway {run.gateway_cpu / secs:.0%}, postgres"
        f" {run.pg_cpu / secs:.0%}, POST client {run.client_cpu / secs:.0%}, others"
        f" {run.other_cpu / secs:.0%}"
    )
    print()
    print(
        f"deliver: msggate {fmt(run.rate)} deliveries/s vs raw aiosmtplib {fmt(base.rate)} msg/s"
        f" = {run.rate / base.rate:.2f}  ({args.messages:,} messages, {args.smtp_connections}"
        f" SMTP connections, sink {kind}{'' if ok else '; NOT ALL SENT'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
