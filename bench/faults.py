"""Faults under load: does an accepted message survive SIGKILLs and a PostgreSQL restart or freeze?

Mixed HTTP and SMTP load runs against one ``msggate serve`` process while the script kills the
gateway (SIGKILL, then starts it again) ``--kills`` times, restarts PostgreSQL once and freezes it
once (SIGSTOP of every server process for ``--freeze`` seconds). Every message carries a unique
subject; an SMTP sink in this process records what the gateway delivers. At the end it prints

    accepted   messages answered 202 / 250
    delivered  accepted messages that reached the sink
    lost       accepted messages that never arrived (must be 0)
    duplicated messages that arrived more than once (at-least-once delivery allows a few)
    delay      accept -> arrival: median and maximum

and the longest any accept request waited while PostgreSQL was frozen (the accept deadline).

PostgreSQL here is a private server from the ``pgserver`` wheel in a temporary folder (never the
machine's own server: it is restarted and frozen). Clients retry as real ones do: HTTP with the
same ``Idempotency-Key``, SMTP by sending the same mail again after a 4xx or a lost connection.

    .venv/bin/python bench/faults.py                     # 90 s of load, 5 kills
    .venv/bin/python bench/faults.py --duration 60 --kills 3 --freeze 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import aiosmtplib
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HOST, PYTHON, Proc, fmt, free_port, temp_dir, wait_port

# -- the private PostgreSQL -------------------------------------------------------------------


class PrivatePostgres:
    """A pgserver PostgreSQL in ``folder``, which this script may restart and freeze."""

    def __init__(self, folder: Path) -> None:
        import pgserver

        self.server = pgserver.get_server(folder / "pg", cleanup_mode="stop")
        self.url = self.server.get_uri()

    def processes(self) -> list:
        import psutil

        # postmaster.pid, not pgserver's cached handle: a restart changes the pid
        pid = int((self.server.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        main = psutil.Process(pid)
        return [main, *main.children(recursive=True)]

    def freeze(self) -> None:
        for proc in self.processes():
            proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        for proc in self.processes():
            proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(
            ["-w", "-m", "fast", "restart"],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
            timeout=60,
        )

    def stop(self) -> None:
        self.server.cleanup()


# -- the SMTP sink ----------------------------------------------------------------------------


class Sink:
    """An aiosmtpd server in a thread that records each subject with its arrival time."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.arrivals: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(self, hostname=HOST, port=self.port)
        self._controller.start()

    async def handle_DATA(self, server, session, envelope) -> str:
        from email import message_from_bytes

        subject = str(message_from_bytes(envelope.original_content or envelope.content)["Subject"])
        with self._lock:
            self.arrivals.setdefault(subject, []).append(time.time())
        return "250 OK"

    def stop(self) -> None:
        self._controller.stop()


# -- the gateway ------------------------------------------------------------------------------


class Gateway:
    """``msggate serve`` that can be killed and started again on the same ports and data."""

    def __init__(self, database_url: str, workdir: Path) -> None:
        from gateway.crypto import new_key

        self.http_port, self.smtp_port = free_port(), free_port()
        self.url = f"http://{HOST}:{self.http_port}"
        self.workdir = workdir
        self.env = dict(os.environ)
        self.env.update(
            MSGGATE_DATABASE_URL=database_url,
            MSGGATE_HTTP_HOST=HOST,
            MSGGATE_HTTP_PORT=str(self.http_port),
            MSGGATE_SMTP_HOST=HOST,
            MSGGATE_SMTP_PORT=str(self.smtp_port),
            MSGGATE_DATA_DIR=str(workdir / "gateway-data"),
            MSGGATE_SECRET_KEY=new_key(),
            MSGGATE_LOG_LEVEL="WARNING",
            MSGGATE_RELAY_DEFAULT_ACCOUNT="sink",
            MSGGATE_LEASE_SECONDS="5",
            MSGGATE_POLL_SECONDS="1",
            MSGGATE_RETRY_BASE_SECONDS="0.5",
            MSGGATE_RETRY_MAX_SECONDS="5",
            MSGGATE_MAX_ATTEMPTS="50",
        )
        self.starts = 0
        self.proc: Proc | None = None

    def start(self) -> None:
        self.starts += 1
        args = [PYTHON, "-m", "gateway.cli", "serve"]
        self.proc = Proc(f"gateway-{self.starts}", args, self.workdir, self.env)
        wait_port(self.http_port, 120, self.proc.proc)
        wait_port(self.smtp_port, 60, self.proc.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.proc.send_signal(signal.SIGKILL)
        self.proc.proc.wait(10)
        self.proc.stop()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def api_key(self) -> str:
        """A new API key from ``msggate apikey create`` (it prints the key on its last line)."""
        import subprocess

        out = subprocess.run(
            [PYTHON, "-m", "gateway.cli", "apikey", "create", "--name", "faults"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=str(self.workdir),
        )
        if out.returncode != 0:
            raise RuntimeError(f"apikey create failed: {out.stderr.strip()[-500:]}")
        return out.stdout.strip().splitlines()[-1].strip()


# -- the load ---------------------------------------------------------------------------------


@dataclass
class Tally:
    accepted: dict[str, float] = field(default_factory=dict)  # subject -> time of 202 / 250
    answers: dict[str, int] = field(default_factory=dict)  # answer kind -> count
    slowest_answer: float = 0.0  # the longest one request / SMTP transaction waited
    frozen_slowest: float = 0.0  # ... of those that started while PostgreSQL was frozen

    def count(self, kind: str) -> None:
        self.answers[kind] = self.answers.get(kind, 0) + 1

    def timed(self, started: float, frozen: bool) -> None:
        waited = time.monotonic() - started
        self.slowest_answer = max(self.slowest_answer, waited)
        if frozen:
            self.frozen_slowest = max(self.frozen_slowest, waited)


class Load:
    def __init__(self, gateway: Gateway, key: str, tally: Tally, stop_at: float) -> None:
        self.gateway, self.key, self.tally, self.stop_at = gateway, key, tally, stop_at
        self.frozen = False

    def running(self) -> bool:
        return time.monotonic() < self.stop_at

    async def http_worker(self, worker: int) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        headers = {"Authorization": f"Bearer {self.key}"}
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as http:
            n = 0
            while self.running():
                subject = f"http-{worker}-{n}"
                body = {
                    "channel": "email",
                    "account": "sink",
                    "recipients": ["a@example.com"],
                    "subject": subject,
                    "text": "fault test",
                }
                while self.running():  # a real client retries with the same key
                    started, frozen = time.monotonic(), self.frozen
                    try:
                        async with http.post(
                            self.gateway.url + "/api/v1/messages",
                            json=body,
                            headers={"Idempotency-Key": subject},
                        ) as response:
                            await response.read()
                            status = response.status
                    except (aiohttp.ClientError, TimeoutError):
                        self.tally.count("http connection error")
                        await asyncio.sleep(0.2)
                        continue
                    self.tally.timed(started, frozen)
                    self.tally.count(f"http {status}")
                    if status == 202:
                        self.tally.accepted.setdefault(subject, time.time())
                        break
                    await asyncio.sleep(0.2)
                n += 1

    async def smtp_worker(self, worker: int) -> None:
        n = 0
        while self.running():
            subject = f"smtp-{worker}-{n}"
            mail = EmailMessage()
            mail["From"], mail["To"], mail["Subject"] = "app@example.com", "b@example.com", subject
            mail.set_content("fault test\n")
            while self.running():  # a mail system tries again after 4xx or a lost connection
                started, frozen = time.monotonic(), self.frozen
                try:
                    await aiosmtplib.send(
                        mail,
                        hostname=HOST,
                        port=self.gateway.smtp_port,
                        start_tls=False,
                        use_tls=False,
                        timeout=30,
                    )
                except aiosmtplib.SMTPResponseException as exc:
                    self.tally.timed(started, frozen)
                    self.tally.count(f"smtp {exc.code}")
                    if exc.code >= 500:
                        break  # refused for good: not accepted, not retried
                    await asyncio.sleep(0.2)
                    continue
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    self.tally.count("smtp connection error")
                    await asyncio.sleep(0.2)
                    continue
                self.tally.timed(started, frozen)
                self.tally.count("smtp 250")
                self.tally.accepted.setdefault(subject, time.time())
                break
            n += 1


async def prepare(gateway: Gateway, key: str, sink_port: int) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers) as http:
        for path, body in (
            ("/api/v1/access-rules", {"name": "loopback", "cidr": "127.0.0.0/8"}),
            (
                "/api/v1/accounts",
                {
                    "channel": "email",
                    "name": "sink",
                    "config": {
                        "host": HOST,
                        "port": sink_port,
                        "tls": "none",
                        "from": "Faults <f@example.com>",
                    },
                },
            ),
        ):
            async with http.post(gateway.url + path, json=body) as response:
                if response.status >= 300:
                    raise RuntimeError(f"POST {path}: {response.status} {await response.text()}")


async def faults(
    args: argparse.Namespace, gateway: Gateway, pg: PrivatePostgres, load: Load, log: list[str]
) -> None:
    """Spread the kills, one PostgreSQL restart and one freeze evenly over the run."""
    events = ["kill"] * args.kills + ["pg-restart", "pg-freeze"]
    order = [events[i] for i in sorted(range(len(events)), key=lambda i: (i * 7) % len(events))]
    gap = args.duration / (len(order) + 1)
    t0 = time.monotonic()
    for i, event in enumerate(order, 1):
        await asyncio.sleep(max(0.0, t0 + i * gap - time.monotonic()))
        at = time.monotonic() - t0
        if event == "kill":
            await asyncio.to_thread(gateway.kill)
            await asyncio.to_thread(gateway.start)
        elif event == "pg-restart":
            await asyncio.to_thread(pg.restart)
        else:
            load.frozen = True
            pg.freeze()
            await asyncio.sleep(args.freeze)
            pg.thaw()
            load.frozen = False
        log.append(f"{at:6.1f} s  {event}")


async def undelivered(database_url: str) -> int:
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE status NOT IN ('sent', 'failed')"
        )
    finally:
        await conn.close()


async def run(args: argparse.Namespace, workdir: Path) -> int:
    pg = PrivatePostgres(workdir)
    sink = Sink()
    gateway = Gateway(pg.url, workdir)
    tally, log = Tally(), []
    try:
        await asyncio.to_thread(gateway.start)
        key = await asyncio.to_thread(gateway.api_key)
        await prepare(gateway, key, sink.port)
        load = Load(gateway, key, tally, time.monotonic() + args.duration)
        workers = [load.http_worker(i) for i in range(args.http_clients)]
        workers += [load.smtp_worker(i) for i in range(args.smtp_clients)]
        print(
            f"load: {args.http_clients} HTTP + {args.smtp_clients} SMTP clients for "
            f"{args.duration:.0f} s; {args.kills} SIGKILLs, a PostgreSQL restart, "
            f"a {args.freeze:.0f} s freeze",
            flush=True,
        )
        await asyncio.gather(faults(args, gateway, pg, load, log), *workers)
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline:
            if set(tally.accepted) <= set(sink.arrivals) and not await undelivered(pg.url):
                break
            await asyncio.sleep(1)
        waiting = await undelivered(pg.url)
    finally:
        gateway.stop()
        sink.stop()
        pg.stop()
    return report(tally, sink, log, waiting)


def report(tally: Tally, sink: Sink, log: list[str], waiting: int) -> int:
    arrivals = sink.arrivals
    accepted = set(tally.accepted)
    lost = accepted - set(arrivals)
    duplicated = [s for s, times in arrivals.items() if len(times) > 1]
    unanswered = set(arrivals) - accepted  # committed, but the client never heard 202 / 250
    delays = [arrivals[s][0] - tally.accepted[s] for s in accepted & set(arrivals)]
    print("\nfaults:")
    for line in log:
        print("  " + line)
    print("answers: " + ", ".join(f"{k} {v}" for k, v in sorted(tally.answers.items())))
    print(
        f"accepted   {fmt(len(accepted))} "
        f"(HTTP {sum(s.startswith('http') for s in accepted)}, "
        f"SMTP {sum(s.startswith('smtp') for s in accepted)})"
    )
    print(f"delivered  {fmt(len(accepted & set(arrivals)))}")
    print(f"lost       {fmt(len(lost))}" + (f"  e.g. {sorted(lost)[:5]}" if lost else ""))
    print(f"duplicated {fmt(len(duplicated))}" + (f"  e.g. {duplicated[:5]}" if duplicated else ""))
    print(
        f"delivered without an answer to the client (committed as the gateway died) "
        f"{fmt(len(unanswered))}"
    )
    print(f"still waiting in the database {fmt(waiting)}")
    if delays:
        print(f"delay      median {statistics.median(delays):.2f} s, max {max(delays):.2f} s")
    print(
        f"slowest accept answer {tally.slowest_answer:.2f} s; while PostgreSQL was frozen "
        f"{tally.frozen_slowest:.2f} s"
    )
    return 1 if lost else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of load")
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs of the gateway")
    parser.add_argument("--freeze", type=float, default=10.0, help="seconds PostgreSQL is frozen")
    parser.add_argument("--http-clients", type=int, default=8)
    parser.add_argument("--smtp-clients", type=int, default=4)
    parser.add_argument("--drain-timeout", type=float, default=180.0)
    args = parser.parse_args()
    with temp_dir("msggate-faults-") as workdir:
        os.chmod(workdir, 0o755)  # pgserver's own user must reach its folder
        sys.exit(asyncio.run(run(args, workdir)))


if __name__ == "__main__":
    main()
