"""A fresh PostgreSQL database per test run, on the real server (never a mock).

The server is ``MSGGATE_TEST_DATABASE_URL`` (default: the local server's ``postgres``
database, used only to create and drop ``msggate_test_<pid>``). If it cannot be reached the
tests fail with the reason: they never skip.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ADMIN_URL = os.environ.get(
    "MSGGATE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    """URL of a new, empty database for this test run; dropped afterwards."""
    name = f"msggate_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        admin = await asyncpg.connect(ADMIN_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is required at {ADMIN_URL} (MSGGATE_TEST_DATABASE_URL): {exc}",
            pytrace=False,
        )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield _with_database(ADMIN_URL, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def make_database(database_url: str) -> AsyncIterator[Callable[[], Awaitable[str]]]:
    """Factory of extra empty databases (for tests that run whole gateways as processes)."""
    made: list[str] = []

    async def make() -> str:
        name = f"msggate_test_{os.getpid()}_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(ADMIN_URL, timeout=10)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        made.append(name)
        return _with_database(ADMIN_URL, name)

    yield make
    admin = await asyncpg.connect(ADMIN_URL, timeout=10)
    try:
        for name in made:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection to the test database, for checking what was committed."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()
