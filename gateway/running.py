"""A whole gateway in a test's event loop, on free ports of 127.0.0.1 (re-exported by
:mod:`gateway.testing`, where plugin authors find it).

:func:`running_gateway` is the block form for a plugin's end-to-end tests; :func:`start_gateway`
starts one from :func:`gateway_settings` for fixtures that start several (msggate's own
``make_gateway``) and close them with :meth:`RunningGateway.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from secrets import token_hex
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from gateway.config import Settings
    from gateway.plugins import Plugins
    from gateway.services import Services

log = logging.getLogger(__name__)

TERMINAL = frozenset({"sent", "failed"})
"""Delivery statuses :meth:`RunningGateway.wait_done` waits for by default."""


class RunningGateway:
    """A started gateway: its URL, an API key, an HTTP client that sends the key, its services.

    ``http`` is an ``aiohttp.ClientSession`` on the gateway's URL that sends the API key;
    ``services`` is the gateway's service layer, for checks the API does not offer.
    :meth:`close` stops it (:func:`running_gateway` does that at the end of its block).
    """

    def __init__(
        self, url: str, api_key: str, services: Services, runner: web.AppRunner | None = None
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.services = services
        self.runner = runner
        self.http = aiohttp.ClientSession(
            base_url=url, headers={"Authorization": f"Bearer {api_key}"}
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """``(status, JSON body)`` of an API call (body None for 204); ``kwargs`` go to
        ``aiohttp.ClientSession.request`` (``json=``, ``params=``, ``headers=`` ...)."""
        async with self.http.request(method, path, **kwargs) as response:
            body = await response.json() if response.status != 204 else None
            return response.status, body

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        """``(status, JSON body)`` of a POST of ``body`` as JSON."""
        return await self.request("POST", path, json=body)

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        """``(status, JSON body)`` of a GET (``params={...}`` for a query string)."""
        return await self.request("GET", path, **kwargs)

    async def create_account(
        self,
        channel: str,
        name: str,
        config: dict[str, Any] | None = None,
        *,
        sandbox: bool = False,
    ) -> dict:
        """``POST /api/v1/accounts`` (the channel validates ``config``); return the account as
        shown. A ``sandbox`` account needs no config: it records what it would send."""
        account: dict[str, Any] = {"channel": channel, "name": name}
        account.update({"sandbox": True} if sandbox else {"config": config})
        status, body = await self.post("/api/v1/accounts", account)
        assert status == 201, f"account {name!r} refused: {status} {body}"
        return body

    async def send(self, **message: Any) -> dict:
        """``POST /api/v1/messages`` with these fields; return the 202 answer (with ``id``)."""
        status, body = await self.post("/api/v1/messages", message)
        assert status == 202, f"message refused: {status} {body}"
        return body

    async def wait_done(
        self, message_id: str, timeout: float = 20, statuses: frozenset[str] = TERMINAL
    ) -> dict:
        """Poll the message until every delivery has one of ``statuses``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = await self.get(f"/api/v1/messages/{message_id}")
            assert status == 200, body
            if all(d["status"] in statuses for d in body["deliveries"]):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"deliveries not {set(statuses)} in {timeout}s: {body}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Close the client and stop the gateway (its dispatcher, relay, database pool)."""
        await self.http.close()
        if self.runner is not None:
            await self.runner.cleanup()


def gateway_settings(data_dir: str | Path, **overrides: Any) -> Settings:
    """Settings for a test gateway: HTTP and the SMTP relay on free ports of 127.0.0.1, a new
    secret key, a dispatcher with quick retries (0.2 s, at most 3 attempts) and a 5 s lease;
    ``overrides`` set any other :class:`gateway.config.Settings` field."""
    from gateway.config import Settings
    from gateway.crypto import new_key

    values: dict[str, Any] = dict(
        data_dir=str(data_dir),
        secret_key=new_key(),
        http_host="127.0.0.1",
        http_port=0,
        smtp_host="127.0.0.1",
        smtp_port=0,
        retry_base_seconds=0.2,
        retry_max_seconds=1.0,
        poll_seconds=0.5,
        lease_seconds=5.0,
        max_attempts=3,
    )
    values.update(overrides)
    return Settings(**values)


async def start_gateway(
    settings: Settings, *, plugins: Plugins | None = None, dispatch: bool = True
) -> RunningGateway:
    """Start a gateway with ``settings`` (HTTP on a free port of 127.0.0.1) and an API key.

    It loads the installed plugins unless ``plugins`` is given and runs its dispatcher unless
    ``dispatch`` is False. The caller must ``await gateway.close()``.
    """
    from gateway.app import create_app, http_site
    from gateway.services import SERVICES

    app = create_app(settings, plugins=plugins, dispatch=dispatch)
    runner = web.AppRunner(app, access_log=None)
    try:
        await runner.setup()  # inside: a failed start still closes what did start
        site = http_site(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        services = app[SERVICES]
        _, key = await services.api_keys.create(f"test-{token_hex(4)}")
    except BaseException:
        await runner.cleanup()
        raise
    return RunningGateway(f"http://127.0.0.1:{port}", key, services, runner)


@contextlib.asynccontextmanager
async def running_gateway(
    data_dir: str | Path,
    *,
    plugins: Plugins | None = None,
    database_url: str | None = None,
    **settings: Any,
) -> AsyncIterator[RunningGateway]:
    """A whole gateway in the test's event loop, on free ports of 127.0.0.1, for the block.

    It loads the installed plugins (yours, through its entry point) unless ``plugins`` is given,
    and runs its dispatcher with quick retries (0.2 s, at most 3 attempts) and a 5 s lease.
    Without ``database_url`` it uses the embedded PostgreSQL in ``data_dir`` (the gateway's own
    default: nothing to set up; it starts in about a second and stops when the process exits),
    so give a session-wide ``data_dir`` that outlives the session (not pytest's ``tmp_path``,
    which may be locked by then). ``settings`` override any :class:`gateway.config.Settings`
    field. Callback routes are served under ``/callbacks``.
    """
    config = gateway_settings(data_dir, database_url=database_url, **settings)
    gateway = await start_gateway(config, plugins=plugins)
    try:
        yield gateway
    finally:
        await gateway.close()
