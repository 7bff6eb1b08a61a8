"""The repository: the only module that talks to PostgreSQL; it returns Structs."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import msgspec

from gateway.errors import Conflict, InUse
from gateway.model import (
    AccountRow,
    ApiKey,
    ClaimedDelivery,
    DeliveryRow,
    EventRow,
    Finished,
    MessageRow,
    NewMessage,
    Receipt,
    SandboxRow,
)
from gateway.sql import QUERIES as Q

T = TypeVar("T")

_json = msgspec.json.Encoder()

NOTIFY_CHANNEL = "msggate_due"
# The Receipt fields record_receipts passes, in the order of the query's arrays ($2 ...).
RECEIPT_COLUMNS = (
    "provider_id",
    "recipient",
    "delivered",
    "code",
    "reason",
    "at",
    "detail",
    "account",
)

# What it looks like when PostgreSQL is down or unreachable (callers answer 503 / 451).
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
)


def _rows(kind: type[T], records: Sequence[asyncpg.Record]) -> list[T]:
    return [kind(**dict(r)) for r in records]


class InsertResult(msgspec.Struct, frozen=True):
    """Which messages of a group commit were not inserted, and which replayed an idempotency
    key (a message skipped without a key was committed by an earlier try of its batch)."""

    skipped: frozenset[uuid.UUID]
    # (scope, key) -> (existing message id, its request hash)
    existing: dict[tuple[str, str], tuple[uuid.UUID, bytes | None]]


class Store:
    """All SQL the gateway runs, behind named methods."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- health ------------------------------------------------------------------------------

    async def ping(self) -> None:
        async with self.pool.acquire(timeout=5) as conn:
            await conn.fetchval("SELECT 1")

    # -- accept (group commit) ---------------------------------------------------------------

    async def insert_messages(self, batch: Sequence[NewMessage]) -> InsertResult:
        """Commit a batch of messages and their deliveries in one statement, with a NOTIFY.

        A message that is not inserted either replays an idempotency key (``existing`` says
        which message holds it) or was committed already by an earlier try of the same batch.
        """
        small = [msgspec.structs.replace(m, text=None, html=None, raw=None) for m in batch]
        row = await self.pool.fetchrow(
            Q["insert_messages"],
            _json.encode(small),
            [m.id for m in batch],
            [m.text for m in batch],
            [m.html for m in batch],
            [m.raw for m in batch],
        )
        skipped = frozenset(row["skipped"])
        existing: dict[tuple[str, str], tuple[uuid.UUID, bytes | None]] = {}
        for m in batch:
            if m.idempotency_key is None or m.id not in skipped:
                continue
            key = (m.idempotency_scope or "", m.idempotency_key)
            if key not in existing:  # committed before ours: ON CONFLICT waited for it
                found = await self.pool.fetchrow(
                    Q["find_idempotent"], m.idempotency_scope, m.idempotency_key
                )
                existing[key] = (found["id"], found["request_hash"])
        return InsertResult(skipped, existing)

    # -- reading messages --------------------------------------------------------------------

    async def message(
        self, message_id: uuid.UUID
    ) -> tuple[MessageRow, list[DeliveryRow], list[EventRow]] | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(Q["message"], message_id)
            if row is None:
                return None
            deliveries = await conn.fetch(Q["message_deliveries"], message_id)
            events = await conn.fetch(Q["message_events"], message_id)
        return MessageRow(**dict(row)), _rows(DeliveryRow, deliveries), _rows(EventRow, events)

    async def deliveries_of(self, message_id: uuid.UUID) -> list[DeliveryRow]:
        return _rows(DeliveryRow, await self.pool.fetch(Q["message_deliveries"], message_id))

    # -- the queue ---------------------------------------------------------------------------

    async def claim(
        self, limit: int, node: str, lease_seconds: float, max_bytes: int = 2**62
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries whose bodies fit in ``max_bytes`` (at least one)."""
        records = await self.pool.fetch(
            Q["claim_deliveries"], limit, node, lease_seconds, max_bytes
        )
        return _rows(ClaimedDelivery, records)

    async def finish(self, results: Sequence[Finished]) -> list[EventRow]:
        """Write outcomes back; returns the events recorded (rows whose lease was lost skip)."""
        cols: list[list[Any]] = [[] for _ in range(10)]
        for f in results:
            values = (
                f.id,
                f.attempt,
                f.status,
                f.due_at,
                f.provider_id,
                f.units,
                f.code,
                f.error,
                f.detail,
                f.kind,
            )
            for i, value in enumerate(values):
                cols[i].append(value)
        sent = [f.id for f in results if f.status == "sent" and f.provider_id]
        async with self.pool.acquire() as conn, conn.transaction():
            records = await conn.fetch(Q["finish_deliveries"], *cols)
            if sent:
                records += await conn.fetch(Q["apply_unmatched_receipts"], sent)
            if any(f.status == "retrying" for f in results):
                await conn.execute(Q["notify_due"])
        return _rows(EventRow, records)

    async def record_receipts(self, channel: str, receipts: Sequence[Receipt]) -> list[EventRow]:
        """Apply provider receipts; returns the receipt events of the deliveries they matched.

        A receipt naming an ``account`` matches only deliveries of messages sent through it.
        """
        cols = [[getattr(r, field) for r in receipts] for field in RECEIPT_COLUMNS]
        async with self.pool.acquire() as conn, conn.transaction():
            records = await conn.fetch(Q["record_receipts"], channel, *cols)
            if len(records) < len(receipts) and random.random() < 0.01:
                await conn.execute(Q["prune_unmatched_receipts"])
        return _rows(EventRow, records)

    async def next_due(self) -> dt.datetime | None:
        return await self.pool.fetchval(Q["next_due"])

    async def listen(self, callback: Callable[[], None]) -> Callable[[], Awaitable[None]]:
        """Call ``callback`` on every NOTIFY of due work; returns the coroutine that stops it."""
        conn = await self.pool.acquire()

        def on_notify(*_: object) -> None:
            callback()

        await conn.add_listener(NOTIFY_CHANNEL, on_notify)

        async def stop() -> None:
            try:
                if not conn.is_closed():
                    await conn.remove_listener(NOTIFY_CHANNEL, on_notify)
            finally:
                await self.pool.release(conn, timeout=5)

        return stop

    # -- sandbox -----------------------------------------------------------------------------

    async def record_sandbox_many(self, batch: Sequence[ClaimedDelivery]) -> None:
        """Record sandbox deliveries in one statement."""
        columns: list[list[Any]] = [[] for _ in range(9)]
        for d in batch:
            for i, value in enumerate(
                (
                    d.id,
                    d.message_id,
                    d.channel,
                    d.account_name,
                    d.recipient,
                    d.subject,
                    d.body_text,
                    d.body_html,
                    d.variables,
                )
            ):
                columns[i].append(value)
        await self.pool.execute(Q["record_sandbox_many"], *columns)

    async def list_sandbox(
        self, account: str | None, recipient: str | None, before: int | None, limit: int
    ) -> list[SandboxRow]:
        records = await self.pool.fetch(Q["list_sandbox"], account, recipient, before, limit)
        return _rows(SandboxRow, records)

    # -- API keys ----------------------------------------------------------------------------

    async def insert_api_key(self, name: str, key_hash: bytes, prefix: str) -> ApiKey:
        try:
            row = await self.pool.fetchrow(Q["insert_api_key"], name, key_hash, prefix)
        except asyncpg.UniqueViolationError:
            raise Conflict(f"an API key named {name!r} already exists") from None
        return ApiKey(**dict(row))

    async def api_key_by_hash(self, key_hash: bytes) -> ApiKey | None:
        row = await self.pool.fetchrow(Q["api_key_by_hash"], key_hash)
        return ApiKey(**dict(row)) if row else None

    async def list_api_keys(self) -> list[ApiKey]:
        return _rows(ApiKey, await self.pool.fetch(Q["list_api_keys"]))

    async def revoke_api_key(self, name: str) -> ApiKey | None:
        row = await self.pool.fetchrow(Q["revoke_api_key"], name)
        return ApiKey(**dict(row)) if row else None

    async def count_api_keys(self) -> int:
        return await self.pool.fetchval(Q["count_api_keys"])

    # -- accounts ----------------------------------------------------------------------------

    async def insert_account(
        self, channel: str, name: str, sandbox: bool, config: dict, secrets: bytes | None
    ) -> AccountRow:
        try:
            row = await self.pool.fetchrow(
                Q["insert_account"], channel, name, sandbox, config, secrets
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"an account named {name!r} already exists") from None
        return AccountRow(**dict(row))

    async def account_by_name(self, name: str) -> AccountRow | None:
        row = await self.pool.fetchrow(Q["account_by_name"], name)
        return AccountRow(**dict(row)) if row else None

    async def account_by_id(self, account_id: int) -> AccountRow | None:
        row = await self.pool.fetchrow(Q["account_by_id"], account_id)
        return AccountRow(**dict(row)) if row else None

    async def list_accounts(self, channel: str | None, search: str | None) -> list[AccountRow]:
        return _rows(AccountRow, await self.pool.fetch(Q["list_accounts"], channel, search))

    async def update_account(
        self, name: str, config: dict, secrets: bytes | None, revision: int
    ) -> AccountRow:
        row = await self.pool.fetchrow(Q["update_account"], name, config, secrets, revision)
        if row is None:
            raise Conflict(f"account {name!r} was changed or deleted meanwhile; try again")
        return AccountRow(**dict(row))

    async def delete_account(self, name: str) -> bool:
        """Delete an account unless deliveries still wait on it (then InUse)."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(Q["account_by_name"] + " FOR UPDATE", name)
            if row is None:
                return False
            pending = await conn.fetchval(Q["pending_for_account"], row["id"])
            if pending:
                raise InUse(f"account {name!r} still has {pending} deliveries waiting to be sent")
            await conn.execute(Q["delete_account"], row["id"])
        return True
