"""The first `msggate serve` keeps its credentials out of logs: they go to an owner-only file in
the data folder, and the banner shows them only to a person at a terminal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pty
import re
import signal
import stat
import sys
import tomllib
from pathlib import Path

import aiohttp
import pytest

from tests.processes import ROOT, free_port, start_gateway

pytestmark = pytest.mark.slow

CSRF_FIELD = re.compile(r'name="_csrf" value="([^"]+)"')


def _env(database_url: str, data: Path, port: int) -> dict[str, str]:
    return {
        "MSGGATE_DATABASE_URL": database_url,
        "MSGGATE_DATA_DIR": str(data),
        "MSGGATE_HTTP_PORT": str(port),
        "MSGGATE_HTTP_HOST": "127.0.0.1",
        "MSGGATE_SMTP_PORT": "0",
    }


async def _console_login(url: str, name: str, password: str) -> int:
    async with aiohttp.ClientSession(
        base_url=url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as http:
        async with http.get("/admin/login") as response:
            token = CSRF_FIELD.search(await response.text()).group(1)
        form = {"_csrf": token, "name": name, "password": password}
        async with http.post("/admin/login", data=form, allow_redirects=False) as response:
            return response.status


async def test_first_serve_without_a_terminal_writes_credentials_to_an_owner_only_file(
    make_database, tmp_path
):
    data, port = tmp_path / "data", free_port()
    # stdout is a pipe here, as under systemd, Docker or `nohup`: what it prints is a log
    gateway = await start_gateway(env=_env(await make_database(), data, port))
    try:
        await gateway.wait_line(r"API key  :")
        path = data / "first-run.toml"
        assert any(line.startswith(f"  secrets  : {path} ") for line in gateway.lines)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        first = gateway.first_run()
        assert first["console_user"] == "admin"
        output = "\n".join(gateway.lines)  # standard output and error, as a log keeps them
        assert first["api_key"].startswith("mg_") and first["api_key"] not in output
        assert first["console_password"] not in output
        assert f"login    : admin / (in {path})" in output
        # the banner's curl lines name the key by its variable, in quotes the shell expands
        assert '-H "Authorization: Bearer $MSGGATE_API_KEY"' in output
        url = f"http://127.0.0.1:{port}"
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {first['api_key']}"}) as h,
            h.get(f"{url}/api/v1/sandbox/messages") as response,
        ):
            assert response.status == 200
        assert await _console_login(url, "admin", first["console_password"]) == 303
    finally:
        assert await gateway.stop() == 0


async def _read_terminal(master: int, into: list[bytes]) -> None:
    """Collect what the child writes to its terminal until it closes it."""
    while True:
        try:
            chunk = await asyncio.to_thread(os.read, master, 65536)
        except OSError:  # EIO: the child's side is closed
            return
        if not chunk:
            return
        into.append(chunk)


async def test_first_serve_on_a_terminal_shows_the_credentials_it_also_saved(
    make_database, tmp_path
):
    data, port = tmp_path / "data", free_port()
    master, child_side = pty.openpty()  # a real terminal, as for `make run`
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "serve",
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=child_side,
        stderr=child_side,
        env={**os.environ, **_env(await make_database(), data, port)},
    )
    os.close(child_side)
    chunks: list[bytes] = []
    reader = asyncio.create_task(_read_terminal(master, chunks))
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not re.search(rb"API key  : \S+", b"".join(chunks)):
            assert process.returncode is None, b"".join(chunks).decode(errors="replace")
            assert asyncio.get_running_loop().time() < deadline, b"".join(chunks)[-3000:]
            await asyncio.sleep(0.05)
        shown = b"".join(chunks).decode(errors="replace")
        path = data / "first-run.toml"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        saved = tomllib.loads(path.read_text("utf-8"))
        assert f"login    : admin / {saved['console_password']}" in shown
        assert f"API key  : {saved['api_key']}" in shown
        assert f"secrets  : {path}" in shown  # and where they are kept
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 30)
        if process.returncode is None:
            process.kill()
            await process.wait()
        with contextlib.suppress(TimeoutError):  # the child's exit closed its side
            await asyncio.wait_for(asyncio.gather(reader, return_exceptions=True), 10)
        os.close(master)
    assert process.returncode == 0
