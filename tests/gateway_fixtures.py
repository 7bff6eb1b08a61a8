"""The gateway running in the test's event loop on a real port, with a real API key.

The gateway is :class:`gateway.testing.RunningGateway`, the one plugin authors use; these
fixtures start it on the test run's database with one secret key for the whole session.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from gateway.crypto import new_key
from gateway.plugins import Plugins
from gateway.testing import RunningGateway, gateway_settings, start_gateway

__all__ = ["MakeGateway", "RunningGateway", "gateway", "make_gateway", "secret_key", "unique"]

MakeGateway = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture(scope="session")
def secret_key() -> str:
    return new_key()


@pytest.fixture
async def make_gateway(
    database_url: str, secret_key: str, tmp_path_factory
) -> AsyncIterator[MakeGateway]:
    """Factory: ``await make_gateway(plugins=None, dispatch=True, **settings)`` starts a
    gateway on the test database (the SMTP relay on a free port); all stop after the test."""
    running: list[RunningGateway] = []

    async def make(
        plugins: Plugins | None = None, dispatch: bool = True, **overrides: Any
    ) -> RunningGateway:
        overrides.setdefault("database_url", database_url)
        overrides.setdefault("secret_key", secret_key)
        # Failed logins count per address in the database all tests of a run share, and most
        # come from 127.0.0.1: a test proving that budget sets it (tests/test_auth_throttle.py).
        overrides.setdefault("auth_failures_per_address", 10_000)
        settings = gateway_settings(tmp_path_factory.mktemp("data"), **overrides)
        gateway = await start_gateway(settings, plugins=plugins, dispatch=dispatch)
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
