"""The embedded default: no MSGGATE_DATABASE_URL, PostgreSQL from the pgserver wheel."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import psutil
import pytest

from gateway.migrate import _LOCK_ID as MIGRATION_LOCK
from tests.processes import free_port, spawn, start_gateway

pytestmark = pytest.mark.slow


@pytest.fixture
def data() -> Iterator[Path]:
    """A data folder outside pytest's own temporary tree: run as root, PostgreSQL runs as
    another user that needs to reach it, and every new pytest session on the machine makes that
    tree private again (which made the server's start and stop fail at random)."""
    folder = Path(tempfile.mkdtemp(prefix="msggate-embedded-")) / "data"
    yield folder
    left = _postmaster(folder / "pg")
    if left is not None and psutil.pid_exists(left[0]):  # a failed test: stop what it left
        os.kill(left[0], signal.SIGINT)  # PostgreSQL's fast shutdown
        with contextlib.suppress(psutil.Error):
            psutil.Process(left[0]).wait(30)
    shutil.rmtree(folder.parent, ignore_errors=True)


async def test_embedded_database_serves_the_whole_flow_and_keeps_data(data):
    port = free_port()
    env = {
        "MSGGATE_DATABASE_URL": "",
        "MSGGATE_DATA_DIR": str(data),
        "MSGGATE_HTTP_PORT": str(port),
        "MSGGATE_HTTP_HOST": "127.0.0.1",
    }
    gateway = await start_gateway(env=env)
    try:
        banner = "\n".join(gateway.lines)
        assert f"embedded PostgreSQL in {data / 'pg'}" in banner
        assert f"http://127.0.0.1:{port}/api/v1" in banner
        key = gateway.first_run()["api_key"]
        assert (data / "secret.key").exists() and (data / "pg" / "PG_VERSION").exists()
        url = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
            async with http.post(
                url + "/api/v1/messages",
                json={
                    "channel": "email",
                    "account": "sandbox",
                    "recipients": ["a@example.com"],
                    "subject": "嵌入式",
                    "text": "hello",
                },
            ) as response:
                assert response.status == 202
                message_id = (await response.json())["id"]
            for _ in range(300):  # 30 s: CI machines can be slow and shared
                async with http.get(url + "/api/v1/sandbox/messages") as response:
                    items = (await response.json())["items"]
                if items:
                    break
                await asyncio.sleep(0.1)
            assert [i["subject"] for i in items] == ["嵌入式"]
        assert await gateway.stop() == 0
        # The last process using the embedded server stops it.
        for _ in range(300):
            if not (data / "pg" / "postmaster.pid").exists():
                break
            await asyncio.sleep(0.1)
        assert not (data / "pg" / "postmaster.pid").exists()

        gateway = await start_gateway(env=env)
        assert "secrets  :" not in "\n".join(gateway.lines)  # not a first run any more
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http,
            http.get(f"{url}/api/v1/messages/{message_id}") as response,
        ):
            assert response.status == 200
            assert (await response.json())["deliveries"][0]["status"] == "sent"
    finally:
        await gateway.stop()


# -- every way out of `msggate serve` stops the embedded PostgreSQL it started or joined ---------


def _postmaster(pgdata: Path) -> tuple[int, str, int] | None:
    """(pid, socket folder, port) of the server in ``pgdata``, from its postmaster.pid."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    return int(lines[0]), lines[4], int(lines[3])


async def _assert_no_postgres_left(pgdata: Path, pid: int) -> None:
    for _ in range(300):  # 30 s: a shared machine can be slow to stop it
        if not (pgdata / "postmaster.pid").exists() and not psutil.pid_exists(pid):
            break
        await asyncio.sleep(0.1)
    assert not psutil.pid_exists(pid), f"PostgreSQL {pid} still runs"
    assert not (pgdata / "postmaster.pid").exists()


def _env(data: Path, **more: str) -> dict[str, str]:
    return {
        "MSGGATE_DATABASE_URL": "",
        "MSGGATE_DATA_DIR": str(data),
        "MSGGATE_HTTP_PORT": str(free_port()),
        "MSGGATE_HTTP_HOST": "127.0.0.1",
        "MSGGATE_SMTP_HOST": "127.0.0.1",
        **more,
    }


async def test_sigterm_during_start_up_stops_the_embedded_postgres_and_a_later_start_works(
    data,
):
    pgdata = data / "pg"
    pgdata.mkdir(parents=True)
    # A server left running by an earlier start that was interrupted: started by a process
    # that has exited without stopping it.
    leftover = await spawn(
        "-c",
        "import sys, pgserver; pgserver.get_server(sys.argv[1], cleanup_mode=None)",
        str(pgdata),
    )
    assert await asyncio.wait_for(leftover.process.wait(), 120) == 0, leftover.lines
    await leftover.stop()
    pid, socket_dir, port = _postmaster(pgdata)
    # Hold the migration lock: the gateway's start waits there, after joining the server.
    conn = await asyncpg.connect(host=socket_dir, port=port, user="postgres", database="postgres")
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        gateway = await spawn("-m", "gateway.cli", "serve", env=_env(data, MSGGATE_SMTP_PORT="0"))
        for _ in range(600):
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if waiting:
                break
            assert gateway.process.returncode is None, gateway.lines
            await asyncio.sleep(0.1)
        assert waiting, "the gateway never reached its migrations:\n" + "\n".join(gateway.lines)
        gateway.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(gateway.process.wait(), 60) == 0, gateway.lines
        await gateway.stop()
    finally:
        with contextlib.suppress(Exception):  # the server may have closed it already
            await conn.close(timeout=5)
    assert "stopping during start-up" in "\n".join(gateway.lines)
    await _assert_no_postgres_left(pgdata, pid)

    # Nothing stale is left behind: a later start works and its stop stops the server.
    gateway = await start_gateway(env=_env(data))
    pid = _postmaster(pgdata)[0]
    assert await gateway.stop() == 0
    await _assert_no_postgres_left(pgdata, pid)


async def test_a_busy_smtp_port_ends_the_start_with_one_line_and_no_postgres_left(data):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        gateway = await spawn(
            "-m", "gateway.cli", "serve", env=_env(data, MSGGATE_SMTP_PORT=str(busy))
        )
        pgdata = data / "pg"
        pid = None
        for _ in range(1200):  # the embedded server starts before the listeners
            pid = pid or (_postmaster(pgdata) or (None,))[0]
            if gateway.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        code = await asyncio.wait_for(gateway.stop(), 60)
    assert code == 2, gateway.lines
    errors = [line for line in gateway.lines if line.startswith("msggate: ")]
    assert len(errors) == 1 and f"MSGGATE_SMTP_PORT={busy}" in errors[0], gateway.lines
    assert not any("Traceback" in line or "ERROR" in line for line in gateway.lines), "\n".join(
        gateway.lines
    )
    assert pid is not None, "the embedded server never started"
    await _assert_no_postgres_left(pgdata, pid)

    gateway = await start_gateway(env=_env(data, MSGGATE_SMTP_PORT="0"))  # a later start works
    pid = _postmaster(pgdata)[0]
    assert await gateway.stop() == 0
    await _assert_no_postgres_left(pgdata, pid)


async def test_after_a_sigkill_the_next_stop_still_stops_the_embedded_postgres(data):
    gateway = await start_gateway(env=_env(data, MSGGATE_SMTP_PORT="0"))
    gateway.kill()  # no exit handler runs: it stays on the server's list of users
    assert await gateway.stop() == -signal.SIGKILL
    pid = _postmaster(data / "pg")[0]
    assert psutil.pid_exists(pid)  # a killed gateway cannot stop the server

    gateway = await start_gateway(env=_env(data, MSGGATE_SMTP_PORT="0"))
    assert _postmaster(data / "pg")[0] == pid  # joined the running server
    assert await gateway.stop() == 0
    await _assert_no_postgres_left(data / "pg", pid)
