"""Opening and closing everything a gateway process needs, in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg

from gateway.accounts import Accounts
from gateway.apikeys import ApiKeys
from gateway.bodies import BodyBudget
from gateway.config import Settings
from gateway.crypto import load_secret_box
from gateway.database import embedded_url, open_pool
from gateway.dispatcher import Dispatcher
from gateway.messages import MessageService
from gateway.migrate import migrate
from gateway.plugins import Plugins
from gateway.ratelimit import rate_limiter
from gateway.receipts import Receipts
from gateway.relay.access import parse_networks
from gateway.relay.services import open_relay
from gateway.services import Services
from gateway.store import Store

log = logging.getLogger(__name__)


async def close_pool(pool: asyncpg.Pool, grace: float = 10.0) -> None:
    """Close the pool; a connection still held after ``grace`` seconds is a bug, not a reason
    to hang the shutdown: log it and terminate."""
    try:
        await asyncio.wait_for(pool.close(), grace)
    except TimeoutError:
        log.error("database pool: connections still held %.0fs after shutdown; terminated", grace)
        pool.terminate()


async def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    return await asyncio.to_thread(embedded_url, settings.data_path)


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, plugins: Plugins | None = None, dispatch: bool = True
) -> AsyncIterator[Services]:
    """Database (migrated), plugins, services and, if ``dispatch``, a running dispatcher."""
    box = load_secret_box(settings.secret_key, settings.data_path)
    pool = await open_pool(
        await database_url(settings), settings.db_pool_size, settings.db_timeout_seconds
    )
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        store = Store(pool)
        plugins = plugins or Plugins.load()
        accounts = Accounts(store, plugins, box)
        messages = MessageService(
            store, plugins, settings.accept_batch, accept_timeout=settings.accept_timeout_seconds
        )
        limiter = rate_limiter(settings.redis_url)
        receipts = Receipts(store, plugins, accounts, parse_networks(settings.trusted_proxies))
        bodies = BodyBudget(settings.body_memory, settings.body_wait_seconds)
        services = Services(
            settings, store, plugins, accounts, messages, ApiKeys(store), receipts, bodies
        )
        task = None
        if dispatch:
            services.dispatcher = Dispatcher(store, plugins, accounts, settings, limiter)
            messages.on_commit = services.dispatcher.poke
        try:
            # before the dispatcher runs: the relay plugs its original-MIME seam into it
            relay = await open_relay(
                settings, store, plugins, messages, services.dispatcher, bodies
            )
            services.relay = relay
            if services.dispatcher is not None:
                task = asyncio.create_task(services.dispatcher.run(), name="dispatcher")
            yield services
        finally:
            if services.dispatcher is not None:
                await services.dispatcher.stop()
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            if services.relay is not None:
                await services.relay.close()
            await messages.close()
            await plugins.close()
            await limiter.close()
    finally:
        await close_pool(pool)
