"""Shared plumbing for the benchmarks: ports, a throw-away database, subprocesses, CPU time.

Everything here is for benchmarks on one machine: every address is 127.0.0.1, every process
started is ended in ``finally`` (by its own pid), every loop is bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
PYTHON = sys.executable
DEFAULT_PG = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
HOST = "127.0.0.1"


def first_run_key(proc: Proc, timeout: float) -> str:
    """The API key a first ``msggate serve`` created: its banner names the owner-only file that
    holds it (the key itself is printed only on a terminal)."""
    path = proc.wait_output(r"(?m)^\s*secrets\s*:\s*(\S+)", timeout).group(1)
    return tomllib.loads(Path(path).read_text("utf-8"))["api_key"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout}s")


def fmt(n: float, digits: int = 0) -> str:
    return f"{n:,.{digits}f}"


# -- a throw-away database -------------------------------------------------------------------


def _with_db(url: str, db: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{db}"


@contextlib.contextmanager
def temp_database(admin_url: str = DEFAULT_PG, prefix: str = "msggate_bench") -> Iterator[str]:
    """CREATE a fresh database, yield its URL, DROP it (WITH FORCE) afterwards."""
    import asyncpg

    name = f"{prefix}_{os.getpid()}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_db(admin_url, name)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- subprocesses ----------------------------------------------------------------------------


class Proc:
    """A subprocess with stdout/stderr in files; ``stop()`` ends it (TERM, then KILL)."""

    def __init__(
        self, name: str, args: list[str], workdir: Path, env: dict[str, str] | None = None
    ):
        self.name = name
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        self._out = open(self.out_path, "wb")  # noqa: SIM115
        self._err = open(self.err_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            args,
            stdout=self._out,
            stderr=self._err,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=str(workdir),
            start_new_session=True,  # not the repo: PYTHONPATH decides
        )
        self.pid = self.proc.pid

    def stdout(self) -> str:
        return self.out_path.read_text(errors="replace")

    def stderr_tail(self, lines: int = 20) -> str:
        return "\n".join(self.err_path.read_text(errors="replace").splitlines()[-lines:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_output(self, pattern: str, timeout: float) -> re.Match:
        """Wait until stdout matches ``pattern`` (a regex); raise if the process dies first."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern, re.MULTILINE)
        while time.monotonic() < deadline:
            m = rx.search(self.stdout())
            if m:
                return m
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.stderr_tail()}"
                )
            time.sleep(0.05)
        raise TimeoutError(f"{self.name}: no {pattern!r} after {timeout}s:\n{self.stderr_tail()}")

    def stop(self, grace: float = 10.0) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(grace)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        finally:
            self._out.close()
            self._err.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine so far, all cores (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def wait_quiet(limit: float = 60.0, threshold: float = 0.3) -> float:
    """Wait (at most ``limit`` s) until the machine is quiet: less than ``threshold`` of one core
    busy over a second, so other people's jobs do not load the run. Returns the busy share seen
    last (cores); the caller may warn when it is still high."""
    deadline = time.monotonic() + limit
    while True:
        busy0, _ = machine_cpu()
        time.sleep(1.0)
        busy = machine_cpu()[0] - busy0
        if busy < threshold or time.monotonic() >= deadline:
            return busy


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of each process named postgres (the server under load; read-only)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found[int(entry.name)] = cpu_seconds(int(entry.name))
            except OSError:
                continue
    return found


def postgres_cpu_since(before: dict[int, float]) -> float:
    """PostgreSQL CPU seconds since ``before`` (processes that exited meanwhile are missed)."""
    return sum(max(0.0, t - before.get(pid, 0.0)) for pid, t in postgres_cpu().items())


def gateway_info() -> tuple[str, str]:
    """The event loop policy ``msggate serve`` picks (gateway/cli.py), and where gateway is from."""
    code = (
        "import asyncio, gateway, gateway.cli as c; c._event_loop_policy();"
        "p = asyncio.get_event_loop_policy();"
        "print(type(p).__module__ + '.' + type(p).__name__); print(gateway.__path__[0])"
    )
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    lines = out.stdout.split()
    if out.returncode != 0 or len(lines) != 2:
        raise RuntimeError(f"cannot import gateway: {out.stderr.strip()[-500:]}")
    return lines[0], lines[1]


# -- the gateway -----------------------------------------------------------------------------


class Gateway:
    """``msggate serve`` as a subprocess on a free port, against ``database_url``."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        dispatcher: bool = True,
        log_level: str = "WARNING",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        from gateway.crypto import new_key

        self.port = free_port()
        self.smtp_port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        data_dir = workdir / "gateway-data"
        data_dir.mkdir(exist_ok=True)
        env = dict(os.environ)
        env.update(
            MSGGATE_DATABASE_URL=database_url,
            MSGGATE_HTTP_HOST=HOST,
            MSGGATE_HTTP_PORT=str(self.port),
            MSGGATE_SMTP_PORT=str(self.smtp_port),
            MSGGATE_DATA_DIR=str(data_dir),
            MSGGATE_SECRET_KEY=new_key(),
            MSGGATE_LOG_LEVEL=log_level,
        )
        env.update(extra_env or {})
        if dispatcher:
            args = [PYTHON, "-m", "gateway.cli", "serve"]
        else:  # the same `msggate serve`, with create_app(dispatch=False)
            args = [PYTHON, str(BENCH_DIR / "_serve_no_dispatcher.py")]
        self.proc = Proc("gateway", args, workdir, env)
        self.pid = self.proc.pid
        self.api_key = ""

    def wait_ready(self, timeout: float = 60.0) -> None:
        self.api_key = first_run_key(self.proc, timeout)
        wait_port(self.port, timeout, self.proc.proc)

    def request(
        self, method: str, path: str, body: Any = None, timeout: float = 30
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None

    def stop(self) -> None:
        self.proc.stop()
