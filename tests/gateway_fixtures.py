"""The gateway running in the test's event loop on a real port, with a real API key."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config import Settings
from gateway.crypto import new_key
from gateway.plugins import Plugins
from gateway.services import SERVICES, Services

TERMINAL = frozenset({"sent", "failed"})


class RunningGateway:
    """A started gateway: its URL, an API key, an HTTP session that sends it, its services."""

    def __init__(self, url: str, api_key: str, services: Services, runner: web.AppRunner) -> None:
        self.url = url
        self.api_key = api_key
        self.services = services
        self.runner = runner
        self.http = aiohttp.ClientSession(
            base_url=url, headers={"Authorization": f"Bearer {api_key}"}
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.http.request(method, path, **kwargs) as response:
            body = await response.json() if response.status != 204 else None
            return response.status, body

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        return await self.request("POST", path, json=body)

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await self.request("GET", path, **kwargs)

    async def send(self, **message: Any) -> dict:
        status, body = await self.post("/api/v1/messages", message)
        assert status == 202, body
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
        await self.http.close()
        await self.runner.cleanup()


@pytest.fixture(scope="session")
def secret_key() -> str:
    return new_key()


def gateway_settings(data_dir: str, secret_key: str, **overrides: Any) -> Settings:
    """Settings for a test gateway: real database, quick retries and leases."""
    values: dict[str, Any] = dict(
        data_dir=data_dir,
        secret_key=secret_key,
        http_port=0,
        smtp_port=0,  # the SMTP relay on a free port (gateway.services.relay.listener.port)
        smtp_host="127.0.0.1",
        retry_base_seconds=0.2,
        retry_max_seconds=1.0,
        poll_seconds=0.5,
        lease_seconds=5.0,
        max_attempts=3,
    )
    values.update(overrides)
    return Settings(**values)


MakeGateway = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def make_gateway(
    database_url: str, secret_key: str, tmp_path_factory
) -> AsyncIterator[MakeGateway]:
    """Factory: ``await make_gateway(plugins=None, **settings)`` starts a gateway."""
    running: list[RunningGateway] = []

    async def make(
        plugins: Plugins | None = None, dispatch: bool = True, **overrides: Any
    ) -> RunningGateway:
        data_dir = str(tmp_path_factory.mktemp("data"))
        overrides.setdefault("database_url", database_url)
        settings = gateway_settings(data_dir, secret_key, **overrides)
        app = create_app(settings, plugins=plugins, dispatch=dispatch)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        services = app[SERVICES]
        _, key = await services.api_keys.create(f"test-{secrets.token_hex(4)}")
        gateway = RunningGateway(f"http://127.0.0.1:{port}", key, services, runner)
        running.append(gateway)
        return gateway

    yield make
    for gateway in running:
        await gateway.close()


@pytest.fixture
async def gateway(make_gateway: MakeGateway) -> RunningGateway:
    """A gateway with the installed plugins and a running dispatcher."""
    return await make_gateway()


def unique(prefix: str) -> str:
    """A name no other test uses (tests share one database per run)."""
    return f"{prefix}-{secrets.token_hex(4)}"
