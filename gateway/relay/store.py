"""The relay's SQL (``-- relay`` block of gateway/sql/queries.sql), behind named methods."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
import msgspec

from gateway.errors import Conflict
from gateway.sql import QUERIES as Q
from gateway.sql import contains

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
RulesCheck = Callable[[Sequence[Network]], None]  # raises to refuse a change of access rules


class RelayUserRow(msgspec.Struct, frozen=True):
    username: str
    created_at: dt.datetime
    last_login_at: dt.datetime | None


class AccessRuleRow(msgspec.Struct, frozen=True):
    id: int
    name: str
    cidr: Network
    created_at: dt.datetime


class BounceFacts(msgspec.Struct, frozen=True):
    """A permanently failed delivery of an SMTP-submitted message, as a bounce needs it."""

    delivery_id: uuid.UUID
    message_id: uuid.UUID
    recipient: str
    status: str
    last_code: str | None
    last_error: str | None
    updated_at: dt.datetime
    channel: str
    subject: str | None
    ingress_detail: dict[str, Any]
    created_at: dt.datetime


class RelayStore:
    """Relay users, access rules, original MIME and bounce look-ups."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- original MIME ---------------------------------------------------------------------

    async def raw_many(self, message_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, bytes]:
        records = await self.pool.fetch(Q["message_raw_many"], list(set(message_ids)))
        return {r["message_id"]: r["data"] for r in records}

    # -- relay users -----------------------------------------------------------------------

    async def insert_user(self, username: str, password_hash: str) -> RelayUserRow:
        try:
            row = await self.pool.fetchrow(Q["insert_relay_user"], username, password_hash)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"a relay user named {username!r} already exists", "username") from None
        return RelayUserRow(**dict(row))

    async def user_hash(self, username: str) -> str | None:
        return await self.pool.fetchval(Q["relay_user_hash"], username)

    async def logged_in(self, username: str, new_hash: str | None) -> None:
        await self.pool.execute(Q["relay_user_logged_in"], username, new_hash)

    async def list_users(self) -> list[RelayUserRow]:
        return [RelayUserRow(**dict(r)) for r in await self.pool.fetch(Q["list_relay_users"])]

    async def delete_user(self, username: str) -> bool:
        return await self.pool.fetchval(Q["delete_relay_user"], username) is not None

    # -- access rules ----------------------------------------------------------------------

    async def insert_rule(self, name: str, cidr: Network, check: RulesCheck) -> AccessRuleRow:
        """Insert the rule if ``check`` passes the networks the list would then hold; rule
        changes take turns, so two of them cannot each pass on what the other removes."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(Q["lock_access_rules"])
            check([*[r["cidr"] for r in await conn.fetch(Q["access_cidrs"])], cidr])
            return AccessRuleRow(**dict(await conn.fetchrow(Q["insert_access_rule"], name, cidr)))

    async def list_rules(self, name: str | None, ip: Address | None) -> list[AccessRuleRow]:
        records = await self.pool.fetch(Q["list_access_rules"], contains(name), ip)
        return [AccessRuleRow(**dict(r)) for r in records]

    async def delete_rule(self, rule_id: int, check: RulesCheck) -> bool:
        """Delete the rule if ``check`` passes the networks left (False: no such rule)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(Q["lock_access_rules"])
            rows = await conn.fetch(Q["access_rule_ids"])
            if not any(r["id"] == rule_id for r in rows):
                return False
            check([r["cidr"] for r in rows if r["id"] != rule_id])
            return await conn.fetchval(Q["delete_access_rule"], rule_id) is not None

    async def cidrs(self) -> list[Network]:
        return [r["cidr"] for r in await self.pool.fetch(Q["access_cidrs"])]

    # -- bounces ---------------------------------------------------------------------------

    async def bounce_facts(self, delivery_id: uuid.UUID) -> BounceFacts | None:
        row = await self.pool.fetchrow(Q["bounce_facts"], delivery_id)
        return BounceFacts(**dict(row)) if row else None

    async def bounces_missing(
        self, within_seconds: float, older_than_seconds: float, limit: int
    ) -> list[uuid.UUID]:
        records = await self.pool.fetch(
            Q["bounces_missing"], within_seconds, older_than_seconds, limit
        )
        return [r["id"] for r in records]
