"""SMTP relay accept throughput: msggate's relay versus a bare aiosmtpd sink, in the same run.

The sink accepts every message and throws it away (aiosmtpd on the gateway's event loop policy,
nothing else). The relay parses each message, routes it, and answers 250 only once the message
and its delivery are committed in PostgreSQL (a database created for the run, dropped after).
Both are loaded the same way, one after the other, ``--rounds`` times: Postfix's smtp-source
(Debian package ``postfix``) with ``--sessions`` parallel connections, each sending message
after message over its connection (``-d``). The client is an allowed address (an access rule
for 127.0.0.1), so neither side does TLS or AUTH.

    .venv/bin/python bench/relay.py [--messages 20000] [--sessions 64] [--size 1000]
                                     [--recipients 1] [--rounds 2] [--dispatcher]
                                     [--unique-recipients] [--python-client]

Accept is measured alone by default: the gateway runs without its dispatcher (messages stay
queued), as ``--dispatcher`` would have the same process send every message to the sandbox at
the same time (bench/deliver.py measures delivery).

Printed: messages per second of each (median of the rounds), the ratio relay / sink, CPU seconds
of each server process (and PostgreSQL's), and a durability check: every message the relay
answered 250 is in the database. Without smtp-source, a built-in asyncio client (aiosmtplib)
generates the load; it runs in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    DEFAULT_PG,
    HOST,
    PYTHON,
    REPO,
    Proc,
    cpu_seconds,
    first_run_key,
    fmt,
    free_port,
    postgres_cpu,
    postgres_cpu_since,
    temp_database,
    temp_dir,
    wait_port,
)

SENDER = "bench-app@example.com"
RECIPIENT = "ops@example.com"
ACCOUNT = "bench-sandbox"
RUN_TIMEOUT = 600  # seconds: no load run may take longer

# -- the bare sink (run as: bench/relay.py --sink PORT) ----------------------------------------


def run_sink(port: int) -> None:
    """A bare aiosmtpd server on the gateway's loop policy: accept, discard, say 250."""
    import signal

    from aiosmtpd.smtp import SMTP

    from gateway.cli import _event_loop_policy

    class Discard:
        async def handle_DATA(self, server, session, envelope) -> str:
            return "250 2.0.0 Ok: queued"

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        handler = Discard()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="bench-sink", enable_SMTPUTF8=True, loop=loop),
            HOST,
            port,
            reuse_address=True,
        )
        print(f"listening on {port}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()

    _event_loop_policy()
    asyncio.run(serve())


# -- the fallback load generator (bench/relay.py --generate ...) -------------------------------


def run_generator(
    port: int, messages: int, sessions: int, size: int, recipients: int, unique: int
) -> None:
    """smtp-source's job with aiosmtplib: ``sessions`` connections, ``messages`` in all."""
    import aiosmtplib

    line = "X" * 76 + "\r\n"  # like smtp-source: short lines
    body = line * (size // len(line)) + "X" * (size % len(line))
    todo = iter(range(messages))

    async def session(n: int) -> int:
        sent = 0
        async with aiosmtplib.SMTP(hostname=HOST, port=port, start_tls=False, timeout=60) as smtp:
            for i in todo:
                data = (
                    f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: bench {i}\r\n"
                    f"Message-Id: <{os.getpid()}.{i}@bench.local>\r\n\r\n{body}\r\n"
                )
                prefix = f"{i}." if unique else ""
                rcpts = [f"{prefix}{r}{RECIPIENT}" for r in range(recipients)]
                await smtp.sendmail(SENDER, rcpts, data)
                sent += 1
        return sent

    async def main() -> None:
        done = await asyncio.gather(*(session(n) for n in range(sessions)))
        print(json.dumps({"sent": sum(done)}))

    asyncio.run(main())


def load(port: int, args: argparse.Namespace, messages: int) -> float:
    """Send ``messages`` to ``port``; return the seconds it took (raise if any was refused)."""
    source = shutil.which("smtp-source")
    if source and not args.python_client:
        command = [
            source,
            *("-s", str(args.sessions), "-m", str(messages), "-l", str(args.size)),
            *("-r", str(args.recipients), "-f", SENDER, "-t", RECIPIENT),
            *("-M", "bench.local", "-S", "bench", "-d"),
            *(["-N"] if args.unique_recipients else []),
            f"{HOST}:{port}",
        ]
    else:
        command = [
            PYTHON,
            __file__,
            "--generate",
            str(port),
            *(str(messages), str(args.sessions), str(args.size), str(args.recipients)),
            str(int(args.unique_recipients)),
        ]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or "error" in result.stderr.lower():
        raise RuntimeError(f"load generator failed ({result.returncode}): {result.stderr[-800:]}")
    return elapsed


# -- the gateway ---------------------------------------------------------------------------------


def start_gateway(database_url: str, workdir: Path, dispatcher: bool) -> tuple[Proc, int, str]:
    """``msggate serve`` with its relay; returns (process, SMTP port, HTTP URL)."""
    from gateway.crypto import new_key

    http_port, smtp_port = free_port(), free_port()
    data_dir = workdir / "gateway-data"
    data_dir.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(
        MSGGATE_DATABASE_URL=database_url,
        MSGGATE_HTTP_HOST=HOST,
        MSGGATE_HTTP_PORT=str(http_port),
        MSGGATE_SMTP_HOST=HOST,
        MSGGATE_SMTP_PORT=str(smtp_port),
        MSGGATE_SMTP_HOSTNAME="bench-relay",
        MSGGATE_RELAY_DEFAULT_ACCOUNT=ACCOUNT,
        MSGGATE_DATA_DIR=str(data_dir),
        MSGGATE_SECRET_KEY=new_key(),
        MSGGATE_LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
    )
    code = "import sys; from gateway.cli import main; sys.exit(main(['serve']))"
    if not dispatcher:
        code = (
            "import functools, sys, gateway.app as a;"
            " a.create_app = functools.partial(a.create_app, dispatch=False);"
            " from gateway.cli import main; sys.exit(main(['serve']))"
        )
    proc = Proc("gateway", [PYTHON, "-c", code], workdir, env)
    key = first_run_key(proc, 120)
    wait_port(smtp_port, 60, proc.proc)
    url = f"http://{HOST}:{http_port}"
    for path, body in (
        ("/api/v1/accounts", {"channel": "email", "name": ACCOUNT, "sandbox": True}),
        ("/api/v1/access-rules", {"name": "bench client", "cidr": HOST}),
    ):
        request = urllib.request.Request(
            url + path,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201, response.read()
    return proc, smtp_port, url


async def count_committed(database_url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM messages m JOIN message_raw r ON r.message_id = m.id"
            " WHERE m.ingress = 'smtp'"
        )
    finally:
        await conn.close()


# -- the run ---------------------------------------------------------------------------------


def measure(name: str, proc: Proc, port: int, args: argparse.Namespace) -> dict:
    load(port, args, args.warmup)
    cpu, pg = cpu_seconds(proc.pid), postgres_cpu()
    seconds = load(port, args, args.messages)
    result = {
        "rate": args.messages / seconds,
        "seconds": seconds,
        "cpu": cpu_seconds(proc.pid) - cpu,
        "pg_cpu": postgres_cpu_since(pg),
    }
    print(
        f"  {name:<6} {fmt(result['rate']):>8} msg/s  ({fmt(seconds, 2)} s; server CPU"
        f" {fmt(result['cpu'], 1)} s, PostgreSQL CPU {fmt(result['pg_cpu'], 1)} s)",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--size", type=int, default=1_000, help="body bytes per message")
    parser.add_argument("--recipients", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--dispatcher",
        action="store_true",
        help="run the dispatcher in the relay's process too (it then also sends every message"
        " to the sandbox: accept and delivery share one core)",
    )
    parser.add_argument(
        "--unique-recipients",
        action="store_true",
        help="a new recipient address for every message (smtp-source -N): no cache helps",
    )
    parser.add_argument("--python-client", action="store_true", help="never use smtp-source")
    parser.add_argument("--database", default=DEFAULT_PG, help="admin URL of a PostgreSQL")
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--generate", nargs=6, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        return run_sink(args.sink)
    if args.generate:
        return run_generator(*args.generate)

    use_source = shutil.which("smtp-source") and not args.python_client
    client = "smtp-source" if use_source else "aiosmtplib"
    print(
        f"relay accept benchmark: {args.messages} messages x {args.rounds} rounds,"
        f" {args.sessions} sessions, {args.size}-byte bodies, {args.recipients} recipient(s),"
        f" client {client}, dispatcher {'on' if args.dispatcher else 'off'},"
        f" {'a new recipient each message' if args.unique_recipients else 'one recipient address'}",
        flush=True,
    )
    results: dict[str, list[dict]] = {"sink": [], "relay": []}
    with temp_dir("msggate-relay-bench-") as workdir, temp_database(args.database) as db_url:
        sink_port = free_port()
        sink = Proc("sink", [PYTHON, __file__, "--sink", str(sink_port)], workdir)
        gateway = None
        try:
            sink.wait_output(r"listening on", 60)
            gateway, relay_port, _ = start_gateway(db_url, workdir, args.dispatcher)
            for n in range(args.rounds):
                print(f"round {n + 1}:", flush=True)
                results["sink"].append(measure("sink", sink, sink_port, args))
                results["relay"].append(measure("relay", gateway, relay_port, args))
            sent = (args.warmup + args.messages) * args.rounds
            committed = asyncio.run(count_committed(db_url))
        finally:
            sink.stop()
            if gateway is not None:
                gateway.stop()
    sink_rate = statistics.median(r["rate"] for r in results["sink"])
    relay_rate = statistics.median(r["rate"] for r in results["relay"])
    print()
    print(f"bare aiosmtpd sink : {fmt(sink_rate):>8} msg/s")
    print(f"msggate relay      : {fmt(relay_rate):>8} msg/s  (250 after commit)")
    print(f"ratio              : {relay_rate / sink_rate:.2f}  (target >= 0.70)")
    print(f"durable            : {committed} of {sent} messages answered 250 are committed")
    if committed != sent:
        sys.exit(f"durability check failed: {committed} committed, {sent} answered 250")


if __name__ == "__main__":
    main()
