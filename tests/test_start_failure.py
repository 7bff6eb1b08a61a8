"""A gateway whose start fails part-way (its SMTP port is taken) closes what had started:
its dispatcher, its database pool. The test helpers plugin authors use share this path."""

from __future__ import annotations

import asyncio
import socket

import pytest

from gateway.config import ConfigError
from gateway.testing import gateway_settings, start_gateway


async def _connections(db) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    )


async def test_a_start_that_fails_at_the_smtp_port_closes_the_dispatcher_and_the_pool(
    database_url, secret_key, db, tmp_path
):
    before = await _connections(db)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = gateway_settings(
            tmp_path,
            database_url=database_url,
            secret_key=secret_key,
            smtp_port=taken.getsockname()[1],
        )
        with pytest.raises(ConfigError, match="MSGGATE_SMTP_PORT"):
            await start_gateway(settings)
    running = [t for t in asyncio.all_tasks() if t.get_name() == "dispatcher" and not t.done()]
    assert running == [], "the dispatcher of the failed start still runs"
    for _ in range(100):  # the server notices closed connections soon, not at once
        if await _connections(db) <= before:
            break
        await asyncio.sleep(0.1)
    assert await _connections(db) <= before, "the failed start left its pool open"


async def test_a_listen_cancelled_at_any_point_gives_its_connection_back(database_url):
    """The dispatcher's LISTEN connection, cancelled while it is being set up (what a start that
    fails does to a dispatcher that has just begun), goes back to the pool: closing it never
    waits for a connection nobody holds."""
    from gateway.database import open_pool
    from gateway.store import Store

    pool = await open_pool(database_url, 2, 30)
    store = Store(pool)
    try:
        for steps in range(40):
            task = asyncio.create_task(store.listen(lambda: None))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            try:
                stop = await task
            except asyncio.CancelledError:
                continue
            await stop()
        await asyncio.wait_for(pool.close(), 5)
    finally:
        pool.terminate()
