"""The embedded default: no MSGGATE_DATABASE_URL, PostgreSQL from the pgserver wheel."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from tests.processes import free_port, start_gateway

pytestmark = pytest.mark.slow


async def test_embedded_database_serves_the_whole_flow_and_keeps_data(tmp_path):
    data = tmp_path / "data"
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
        key = re.search(r"API key  : (mg_\S+)", banner).group(1)
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
        assert "API key  : mg_" not in "\n".join(gateway.lines)  # not a first run any more
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http,
            http.get(f"{url}/api/v1/messages/{message_id}") as response,
        ):
            assert response.status == 200
            assert (await response.json())["deliveries"][0]["status"] == "sent"
    finally:
        await gateway.stop()
