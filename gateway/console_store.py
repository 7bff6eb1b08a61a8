"""The web console's SQL (gateway/sql/console.sql), behind named methods that return Structs."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import asyncpg
import msgspec

from gateway.errors import Conflict
from gateway.sql import load_queries

log = logging.getLogger(__name__)

Q = load_queries("console.sql")


class ConsoleUserRow(msgspec.Struct, frozen=True):
    """A console user as the console shows it (never the password hash)."""

    id: int
    name: str
    role: str
    language: str
    time_zone: str
    must_change_password: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    last_login_at: dt.datetime | None


class SessionRow(msgspec.Struct, frozen=True):
    """A live session and its user."""

    user: ConsoleUserRow
    csrf_token: str
    last_seen_at: dt.datetime
    created_at: dt.datetime


class LogRow(msgspec.Struct, frozen=True):
    """One line of the message log: a message with its deliveries counted by status."""

    id: uuid.UUID
    channel: str
    account_name: str
    subject: str | None
    preview: str
    ingress: str
    created_at: dt.datetime
    recipients: int
    statuses: dict[str, int]


class Overview(msgspec.Struct, frozen=True):
    messages_24h: int
    deliveries_24h: dict[str, int]
    accounts: int
    pending: int
    sandbox: int


_USER_FIELDS = tuple(ConsoleUserRow.__struct_fields__)


def _user(record: asyncpg.Record) -> ConsoleUserRow:
    return ConsoleUserRow(**{k: record[k] for k in _USER_FIELDS})


class ConsoleStore:
    """Console users, sessions, the message log and the overview."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- users -------------------------------------------------------------------------------

    async def insert_user(
        self,
        name: str,
        password_hash: str,
        role: str,
        language: str,
        time_zone: str,
        must_change_password: bool,
    ) -> ConsoleUserRow:
        try:
            record = await self.pool.fetchrow(
                Q["console_insert_user"],
                name,
                password_hash,
                role,
                language,
                time_zone,
                must_change_password,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a console user named {name!r} already exists", "name") from None
        return _user(record)

    async def user_by_id(self, user_id: int) -> ConsoleUserRow | None:
        record = await self.pool.fetchrow(Q["console_user_by_id"], user_id)
        return _user(record) if record else None

    async def user_login(self, name: str) -> tuple[int, str] | None:
        """(id, password hash) of the user called ``name``, or None."""
        record = await self.pool.fetchrow(Q["console_user_login"], name)
        return (record["id"], record["password_hash"]) if record else None

    async def list_users(self, pattern: str | None) -> list[ConsoleUserRow]:
        return [_user(r) for r in await self.pool.fetch(Q["console_list_users"], pattern)]

    async def count_users(self) -> int:
        return await self.pool.fetchval(Q["console_count_users"])

    async def update_user(
        self, user_id: int, role: str, language: str, time_zone: str
    ) -> ConsoleUserRow | None:
        """The updated user, or None if it is gone or is the last administrator losing the role."""
        record = await self.pool.fetchrow(
            Q["console_update_user"], user_id, role, language, time_zone
        )
        return _user(record) if record else None

    async def set_password(self, user_id: int, password_hash: str, must_change: bool) -> bool:
        return (
            await self.pool.fetchval(Q["console_set_password"], user_id, password_hash, must_change)
            is not None
        )

    async def delete_user(self, user_id: int) -> bool:
        return await self.pool.fetchval(Q["console_delete_user"], user_id) is not None

    async def logged_in(self, user_id: int, new_hash: str | None) -> None:
        await self.pool.execute(Q["console_user_logged_in"], user_id, new_hash)

    # -- sessions ----------------------------------------------------------------------------

    async def insert_session(
        self,
        id_hash: bytes,
        user_id: int,
        csrf_token: str,
        remote: str | None,
        user_agent: str | None,
        idle_seconds: float,
    ) -> None:
        await self.pool.execute(
            Q["console_insert_session"],
            id_hash,
            user_id,
            csrf_token,
            remote,
            user_agent,
            idle_seconds,
        )

    async def session(self, id_hash: bytes, max_age_seconds: float) -> SessionRow | None:
        record = await self.pool.fetchrow(Q["console_session"], id_hash, max_age_seconds)
        if record is None:
            return None
        return SessionRow(
            _user(record),
            record["csrf_token"],
            record["last_seen_at"],
            record["session_created_at"],
        )

    async def touch_session(self, id_hash: bytes, idle_seconds: float) -> None:
        await self.pool.execute(Q["console_touch_session"], id_hash, idle_seconds)

    async def delete_session(self, id_hash: bytes) -> None:
        await self.pool.execute(Q["console_delete_session"], id_hash)

    async def delete_user_sessions(self, user_id: int, keep: bytes | None) -> None:
        await self.pool.execute(Q["console_delete_user_sessions"], user_id, keep)

    async def prune_sessions(self, max_age_seconds: float) -> None:
        await self.pool.execute(Q["console_prune_sessions"], max_age_seconds)

    # -- message log -------------------------------------------------------------------------

    async def messages(
        self,
        channel: str | None,
        status: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        pattern: str | None,
        exact_id: uuid.UUID | None,
        provider_id: str | None,
        limit: int,
        offset: int,
    ) -> list[LogRow]:
        records = await self.pool.fetch(
            Q["console_messages"],
            channel,
            status,
            since,
            until,
            pattern,
            exact_id,
            provider_id,
            limit,
            offset,
        )
        return [LogRow(**dict(r)) for r in records]

    async def overview(self) -> Overview:
        record: Any = await self.pool.fetchrow(Q["console_overview"])
        return Overview(**dict(record))
