"""The msggate command: apikey, send, plugins — run as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import sys

import aiohttp

from tests.gateway_fixtures import unique

CLI = [sys.executable, "-m", "gateway.cli"]


async def run(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode, out.decode(), err.decode()


async def test_apikey_create_prints_a_working_key_on_its_last_line(
    gateway, database_url, secret_key, tmp_path
):
    name = unique("cli")
    code, out, err = await run(
        "apikey",
        "create",
        "--name",
        name,
        "--database-url",
        database_url,
        "--secret-key",
        secret_key,
        "--data-dir",
        str(tmp_path),
    )
    assert code == 0, err
    key = out.strip().splitlines()[-1]
    assert key.startswith("mg_") and " " not in key
    stored = await gateway.services.store.pool.fetchval(
        "SELECT count(*) FROM api_keys WHERE key_hash::text LIKE '%' || $1 || '%'", key[3:]
    )
    assert stored == 0  # only a hash is stored
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            gateway.url + "/api/v1/accounts", headers={"Authorization": f"Bearer {key}"}
        ) as r,
    ):
        assert r.status == 200
    code, out, _ = await run(
        "apikey",
        "list",
        "--database-url",
        database_url,
        "--data-dir",
        str(tmp_path),
        "--secret-key",
        secret_key,
    )
    assert name in out and key not in out
    code, _, err = await run(
        "apikey",
        "create",
        "--name",
        name,
        "--database-url",
        database_url,
        "--data-dir",
        str(tmp_path),
        "--secret-key",
        secret_key,
    )
    assert code == 1 and "already exists" in err


async def test_send_posts_a_message_to_a_running_gateway(gateway):
    account = unique("sb")
    await gateway.post("/api/v1/accounts", {"channel": "email", "name": account, "sandbox": True})
    code, out, err = await run(
        "send",
        "--url",
        gateway.url,
        "--api-key",
        gateway.api_key,
        "--account",
        account,
        "--to",
        "a@example.com",
        "--to",
        "b@example.com",
        "--subject",
        "你好",
        "--text",
        "正文",
    )
    assert code == 0, err
    accepted = json.loads(out)
    assert len(accepted["deliveries"]) == 2
    done = await gateway.wait_done(accepted["id"])
    assert {d["status"] for d in done["deliveries"]} == {"sent"}


async def test_send_reports_the_api_error(gateway):
    code, _, err = await run(
        "send",
        "--url",
        gateway.url,
        "--api-key",
        gateway.api_key,
        "--account",
        "nope",
        "--to",
        "a@example.com",
        "--text",
        "x",
    )
    assert code == 1
    assert json.loads(err)["error"]["field"] == "account"


async def test_plugins_lists_the_email_channel():
    code, out, _ = await run("plugins")
    assert code == 0
    assert any(
        line.startswith("email\tmsggate ") and "channels: email" in line
        for line in out.splitlines()
    ), out
