"""Gateways and SMTP sinks as real subprocesses, for crash and start-up tests."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A child process whose stdout lines are collected as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    async def wait_line(self, pattern: str, timeout: float = 60) -> re.Match:
        regex = re.compile(pattern)
        deadline = asyncio.get_running_loop().time() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if match := regex.search(line):
                    return match
            seen = len(self.lines)
            if self.process.returncode is not None and self._reader.done():
                raise AssertionError(
                    f"process exited {self.process.returncode} before"
                    f" {pattern!r}:\n" + "\n".join(self.lines[-40:])
                )
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"no {pattern!r} in {timeout}s:\n" + "\n".join(self.lines[-40:])
                )
            await asyncio.sleep(0.05)

    def first_run(self) -> dict[str, str]:
        """The credentials a first ``msggate serve`` created, from the owner-only file its
        banner names (the banner shows them only on a terminal)."""
        match = re.search(r"^  secrets  : (\S+)", "\n".join(self.lines), re.MULTILINE)
        assert match, "the banner names no first-run file:\n" + "\n".join(self.lines[-40:])
        return tomllib.loads(Path(match.group(1)).read_text("utf-8"))

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    async def stop(self, timeout: float = 20) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout)
            except TimeoutError:
                self.kill()
        await self.process.wait()
        await asyncio.gather(self._reader, return_exceptions=True)
        return self.process.returncode


async def spawn(*args: str, env: dict[str, str] | None = None) -> Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    return Process(process)


async def start_sink(record: Path, delay: float = 0.0) -> tuple[Process, int]:
    """The test SMTP sink in its own process, appending each message to ``record``."""
    sink = await spawn("-m", "tests.smtp_fixtures", "--delay", str(delay), "--record", str(record))
    match = await sink.wait_line(r'^\{"host"')
    return sink, json.loads(match.string)["port"]


async def start_gateway(*flags: str, env: dict[str, str] | None = None) -> Process:
    """``msggate serve`` in its own process; returns once its banner says it is running."""
    env = {"MSGGATE_SMTP_PORT": "0", **(env or {})}  # the relay on a free port unless told
    gateway = await spawn("-m", "gateway.cli", "serve", *flags, env=env)
    await gateway.wait_line(r"msggate \S+ is running")
    await gateway.wait_line(r"channels :")
    return gateway
