"""SIGKILL in the middle of sending loses nothing: every accepted message arrives after restart."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.processes import free_port, start_gateway, start_sink

pytestmark = pytest.mark.slow

FIRST_BATCH = 40


def received_subjects(record: Path) -> list[str]:
    if not record.exists():
        return []
    return [json.loads(line)["subject"] for line in record.read_text().splitlines() if line]


async def test_sigkill_mid_dispatch_loses_no_accepted_message(make_database, secret_key, tmp_path):
    database_url = await make_database()
    record = tmp_path / "received.jsonl"
    sink, sink_port = await start_sink(record, delay=0.2)
    port = free_port()
    flags = (
        "--database-url",
        database_url,
        "--secret-key",
        secret_key,
        "--data-dir",
        str(tmp_path / "data"),
        "--http-port",
        str(port),
        "--http-host",
        "127.0.0.1",
        "--lease-seconds",
        "3",
        "--poll-seconds",
        "0.5",
        "--retry-base-seconds",
        "0.5",
        "--dispatch-concurrency",
        "8",
    )
    gateway = await start_gateway(*flags)
    try:
        key = gateway.first_run()["api_key"]
        url = f"http://127.0.0.1:{port}"
        accepted: list[str] = []
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
            async with http.post(
                url + "/api/v1/accounts",
                json={
                    "channel": "email",
                    "name": "sink",
                    "config": {
                        "host": "127.0.0.1",
                        "port": sink_port,
                        "tls": "none",
                        "from": "Crash Test <crash@example.com>",
                    },
                },
            ) as response:
                assert response.status == 201, await response.text()

            async def post(subject: str) -> None:
                async with http.post(
                    url + "/api/v1/messages",
                    json={
                        "channel": "email",
                        "account": "sink",
                        "recipients": ["a@example.com"],
                        "subject": subject,
                        "text": "x",
                    },
                ) as response:
                    if response.status == 202:
                        accepted.append(subject)

            await asyncio.gather(*[post(f"first-{i}") for i in range(FIRST_BATCH)])
            assert len(accepted) == FIRST_BATCH

            # Keep accepting while the first messages trickle out through the slow sink ...
            async def keep_posting() -> None:
                for i in range(10_000):
                    try:
                        await post(f"during-{i}")
                    except aiohttp.ClientError:
                        return  # the gateway is gone

            poster = asyncio.create_task(keep_posting())
            for _ in range(200):
                if len(received_subjects(record)) >= 5:
                    break
                await asyncio.sleep(0.05)
            # ... then kill it, mid-send, with no chance to clean up.
            gateway.kill()
            await gateway.stop()
            await asyncio.wait_for(poster, 10)

        delivered_before = set(received_subjects(record))
        assert 5 <= len(delivered_before) < len(accepted), "the kill must land mid-dispatch"
        conn = await asyncpg.connect(database_url)
        try:
            pending = await conn.fetchval("SELECT count(*) FROM deliveries WHERE status <> 'sent'")
            assert pending > 0
            committed = {r["subject"] for r in await conn.fetch("SELECT subject FROM messages")}
            assert set(accepted) <= committed  # every 202 was durable

            gateway = await start_gateway(*flags)
            for _ in range(600):
                if (
                    await conn.fetchval("SELECT count(*) FROM deliveries WHERE status <> 'sent'")
                    == 0
                ):
                    break
                await asyncio.sleep(0.1)
            statuses = dict(
                await conn.fetch("SELECT status, count(*) FROM deliveries GROUP BY status")
            )
        finally:
            await conn.close()
        assert set(statuses) == {"sent"}, statuses
        for _ in range(100):  # the sink writes its record just after answering
            if set(accepted) <= set(received_subjects(record)):
                break
            await asyncio.sleep(0.05)
        missing = set(accepted) - set(received_subjects(record))
        assert not missing, f"{len(missing)} accepted messages never arrived: {sorted(missing)[:5]}"
    finally:
        await gateway.stop()
        await sink.stop()
