"""Memory budget: the gateway's RSS under large API posts and large mails, and after them.

Starts ``msggate serve`` (dispatcher and SMTP relay on, as in production) against a database
created for the run, then runs two attacks at the same time:

- ``--posts`` (40) concurrent ``POST /api/v1/messages`` of ``--post-mb`` (5) MB each: an e-mail
  to the sandbox account with a large HTML body;
- ``--mails`` (4) concurrent SMTP transactions of ``--mail-mb`` (24) MB each: a text part and a
  base64 attachment, from 127.0.0.1 (an access rule lets it relay without AUTH).

A thread samples the gateway process's own RSS (``/proc/<pid>/status`` VmRSS; nothing else is
counted) every 100 ms from start to ``--after`` (60) seconds after the last answer.

    .venv/bin/python bench/memory.py [--posts 40] [--post-mb 5] [--mails 4] [--mail-mb 24]
                                     [--after 60] [--pg URL]

Printed: baseline RSS (idle, after one small message of each kind), peak RSS during the attacks,
RSS 60 s after the last answer, when it went under 150 MB for good, a timeline (the highest
sample of each 5 s), the answers (202 / 250 or not), and whether every accepted message is
committed. Not a timed test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEFAULT_PG, HOST, Gateway, fmt, temp_database, temp_dir, wait_port

MB = 1_000_000
SAMPLE_SECONDS = 0.1
TARGET_PEAK_MB = 300
TARGET_AFTER_MB = 150
SENDER = "memory-bench@example.com"


class RssSampler(threading.Thread):
    """Reads one process's VmRSS every 100 ms into ``samples`` as (monotonic time, bytes)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.path = Path(f"/proc/{pid}/status")
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def rss(self) -> int:
        for line in self.path.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._halt.is_set():
            try:
                self.samples.append((time.monotonic(), self.rss()))
            except OSError:
                return  # the process is gone
            next_at += SAMPLE_SECONDS
            self._halt.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._halt.set()
        self.join(5)

    def between(self, start: float, end: float) -> list[int]:
        return [rss for at, rss in self.samples if start <= at <= end]


def post_body(n: int, size: int) -> bytes:
    """A message to the sandbox account whose HTML makes the whole body ``size`` bytes."""
    head = json.dumps(
        {
            "channel": "email",
            "account": "sandbox",
            "recipients": [f"memory-{n}@example.com"],
            "subject": f"内存预算 memory bench post {n}",
            "html": "",
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()[:-2]  # up to the HTML's opening quote
    paragraph = b"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit.</p> "
    fill = size - len(head) - 2
    html = paragraph * (fill // len(paragraph)) + b"x" * (fill % len(paragraph))
    return head + html + b'"}'


def mail(n: int, size: int, attachment: bytes) -> bytes:
    """A MIME mail of about ``size`` bytes: a short text part and a base64 attachment."""
    head = (
        f"From: <{SENDER}>\r\nTo: <memory-{n}@example.com>\r\nSubject: memory bench mail {n}\r\n"
        f"Message-ID: <memory-{n}.{os.getpid()}@bench.local>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n'
        "--b0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"Report {n} attached.\r\n"
        "--b0\r\nContent-Type: application/octet-stream\r\n"
        'Content-Disposition: attachment; filename="report.bin"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode()
    tail = b"\r\n--b0--\r\n"
    encoded = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    body = encoded[: size - len(head) - len(tail)]
    body = body[: body.rfind(b"\r\n") + 2]
    return head + body + tail


async def attack(gw: Gateway, args: argparse.Namespace, posts: int, mails: int) -> dict:
    """Run both attacks at once; return what each request was answered."""
    import aiohttp
    import aiosmtplib

    attachment = os.urandom(int(args.mail_mb * MB * 3 / 4) + 1024)
    post_size = int(args.post_mb * MB)
    mail_size = int(args.mail_mb * MB)
    headers = {"Authorization": f"Bearer {gw.api_key}", "Content-Type": "application/json"}
    answers: dict = {"posts": [], "mails": [], "ids": []}

    async def post(http: aiohttp.ClientSession, n: int) -> None:
        try:
            async with http.post(
                gw.url + "/api/v1/messages", data=post_body(n, post_size), headers=headers
            ) as resp:
                raw = await resp.read()
                answers["posts"].append(resp.status)
                if resp.status == 202:
                    answers["ids"].append(json.loads(raw)["id"])
                else:
                    print(f"  post {n}: {resp.status} {raw[:300]!r}", flush=True)
        except (aiohttp.ClientError, TimeoutError) as exc:
            answers["posts"].append(type(exc).__name__)
            print(f"  post {n}: {exc!r}", flush=True)

    async def send(n: int) -> None:
        try:
            async with aiosmtplib.SMTP(
                hostname=HOST, port=gw.smtp_port, start_tls=False, timeout=300
            ) as smtp:
                _, reply = await smtp.sendmail(
                    SENDER, [f"memory-{n}@example.com"], mail(n, mail_size, attachment)
                )
                answers["mails"].append(250)
                answers["ids"] += re.findall(r"[0-9a-f-]{36}", reply)
        except aiosmtplib.SMTPException as exc:
            answers["mails"].append(getattr(exc, "code", type(exc).__name__))
            print(f"  mail {n}: {exc!r}", flush=True)

    timeout = aiohttp.ClientTimeout(total=300)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        await asyncio.gather(
            *(post(http, n) for n in range(posts)), *(send(n) for n in range(mails))
        )
    return answers


async def committed(database_url: str, ids: list[str]) -> int:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT count(*) FROM messages WHERE id = ANY($1::uuid[])", ids)
    finally:
        await conn.close()


def timeline(sampler: RssSampler, start: float, end: float, step: float = 5.0) -> str:
    parts, t = [], start
    while t < end:
        window = sampler.between(t, t + step)
        if window:
            parts.append(f"{t - start:.0f}s:{max(window) / MB:.0f}")
        t += step
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=40, help="concurrent API posts")
    parser.add_argument("--post-mb", type=float, default=5, help="size of each post (MB)")
    parser.add_argument("--mails", type=int, default=4, help="concurrent SMTP mails")
    parser.add_argument("--mail-mb", type=float, default=24, help="size of each mail (MB)")
    parser.add_argument("--after", type=float, default=60, help="seconds to watch after")
    parser.add_argument(
        "--no-dispatcher", action="store_true", help="accept only (nothing is sent meanwhile)"
    )
    parser.add_argument("--pg", default=DEFAULT_PG, help="admin URL of a PostgreSQL")
    args = parser.parse_args()

    with temp_dir("msggate-memory-bench-") as workdir, temp_database(args.pg) as db_url:
        gw = Gateway(
            db_url,
            workdir,
            dispatcher=not args.no_dispatcher,
            extra_env={"MSGGATE_SMTP_HOST": HOST, "MSGGATE_RELAY_DEFAULT_ACCOUNT": "sandbox"},
        )
        sampler = RssSampler(gw.pid)
        try:
            gw.wait_ready()
            wait_port(gw.smtp_port, 60, gw.proc.proc)
            status, body = gw.request(
                "POST", "/api/v1/access-rules", {"name": "memory bench", "cidr": HOST}
            )
            assert status == 201, body
            sampler.start()
            small = argparse.Namespace(**{**vars(args), "post_mb": 0.001, "mail_mb": 0.002})
            asyncio.run(attack(gw, small, 1, 1))  # warm up: one small message of each
            time.sleep(3)
            t0 = time.monotonic()
            time.sleep(2)
            baseline = statistics.median(sampler.between(t0, time.monotonic()))
            print(
                f"attack: {args.posts} x {fmt(args.post_mb, 1)} MB API posts and {args.mails} x"
                f" {fmt(args.mail_mb, 1)} MB mails at once; gateway pid {gw.pid}",
                flush=True,
            )
            started = time.monotonic()
            answers = asyncio.run(attack(gw, args, args.posts, args.mails))
            ended = time.monotonic()
            time.sleep(args.after)
            sampler.stop()
            after = sampler.between(ended + args.after - 1, ended + args.after + 1)
            found = asyncio.run(committed(db_url, answers["ids"]))
        finally:
            sampler.stop()
            gw.stop()
    peak = max(sampler.between(started, ended + args.after))
    over = [at for at, rss in sampler.samples if rss >= TARGET_AFTER_MB * MB]
    settled = max(0.0, over[-1] + SAMPLE_SECONDS - ended) if over else 0.0
    posts_ok = answers["posts"].count(202)
    mails_ok = answers["mails"].count(250)
    accepted = posts_ok + mails_ok
    print(f"attack took        : {ended - started:.1f} s")
    print(f"baseline RSS       : {baseline / MB:.0f} MB")
    print(f"peak RSS           : {peak / MB:.0f} MB  (target < {TARGET_PEAK_MB} MB)")
    print(
        f"RSS {args.after:.0f} s after     : {(after[-1] if after else 0) / MB:.0f} MB"
        f"  (target < {TARGET_AFTER_MB} MB)"
    )
    print(
        f"under {TARGET_AFTER_MB} MB for good: {settled:.1f} s after the last answer"
        + ("" if not over or over[-1] < sampler.samples[-1][0] else " (not yet)")
    )
    print(f"timeline (max MB)  : {timeline(sampler, started, ended + args.after)}")
    print(f"API posts accepted : {posts_ok} of {args.posts} (202)")
    print(f"mails accepted     : {mails_ok} of {args.mails} (250)")
    print(f"committed          : {found} of {accepted} accepted messages are in the database")
    if accepted != args.posts + args.mails or found != accepted:
        sys.exit("not every message was accepted and committed")


if __name__ == "__main__":
    main()
