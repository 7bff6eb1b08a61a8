"""The repository: the only module that talks to PostgreSQL; it returns Structs."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import msgspec

from gateway.errors import Conflict, InUse, Unstorable
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
from gateway.sql import contains, load_queries
from gateway.storable import NUL_IN_JSON, unstorable

THROTTLE_Q = load_queries("throttle.sql")

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

# What it looks like when PostgreSQL is down, unreachable, too slow or briefly unable to go on
# (callers answer 503 / 451: the same request may succeed later).
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,  # 57: cancelled, shutting down, cannot connect now
    asyncpg.InsufficientResourcesError,  # 53: disk full, too many connections
    asyncpg.TransactionRollbackError,  # 40: deadlock, serialization failure
)

# SQLSTATE classes that blame the data of a statement, not the database: 22 data exception
# (e.g. 22P05 untranslatable character), 23 integrity constraint, 54 program limit (e.g. too
# deeply nested JSON). In a batch they are some item's fault, so the batch is split to find it.
ITEM_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,
)


def item_error(exc: BaseException) -> bool:
    """Whether ``exc`` from a batch write may be one item's fault (Batcher ``splittable``)."""
    return isinstance(exc, (*ITEM_ERRORS, Unstorable))


def _rows(kind: type[T], records: Sequence[asyncpg.Record]) -> list[T]:
    return [kind(**dict(r)) for r in records]


class InsertResult(msgspec.Struct, frozen=True):
    """Which messages of a group commit were not inserted, and which replayed an idempotency
    key (a message skipped without a key was committed by an earlier try of its batch).
    ``refused``: messages the database cannot store, each with its own error, left out."""

    skipped: frozenset[uuid.UUID]
    # (scope, key) -> (existing message id, its request hash)
    existing: dict[tuple[str, str], tuple[uuid.UUID, bytes | None]]
    refused: dict[uuid.UUID, Unstorable] = {}


_SURROGATE = re.compile("[\ud800-\udfff]")


def _suspect_text(text: str | None) -> bool:
    """Whether ``text`` may hold what PostgreSQL refuses (cheap: ASCII is known in O(1))."""
    return bool(text) and (
        "\x00" in text or (not text.isascii() and _SURROGATE.search(text) is not None)
    )


def _without_bodies(batch: Sequence[NewMessage]) -> bytes:
    """The statement's JSON: the messages without text, html and raw (sent as arrays)."""
    return _json.encode([msgspec.structs.replace(m, text=None, html=None, raw=None) for m in batch])


def _encode_storable(
    batch: Sequence[NewMessage],
) -> tuple[Sequence[NewMessage], bytes, dict[uuid.UUID, Unstorable]]:
    """The messages PostgreSQL can store, their JSON, and the refusals of the others.

    Looking for those costs one substring search of the JSON (and of each non-ASCII body)
    unless one shows a sign of a NUL or an unpaired surrogate; only then is each message walked.
    """
    try:
        payload = _without_bodies(batch)
        if NUL_IN_JSON not in payload and not any(
            _suspect_text(m.text) or _suspect_text(m.html) for m in batch
        ):
            return batch, payload, {}
    except UnicodeEncodeError:
        pass
    refused = {m.id: problem for m in batch if (problem := unstorable(m)) is not None}
    kept = [m for m in batch if m.id not in refused]
    try:
        return kept, _without_bodies(kept), refused
    except UnicodeEncodeError:  # somewhere the walk does not look: let the caller split
        raise Unstorable("the message holds text that is not valid Unicode") from None


def _refusal(exc: BaseException) -> Unstorable:
    """A data error of a one-message statement as that message's own error."""
    what = {
        "22": "has a value the database cannot store",
        "23": "breaks a rule of the database",
        "54": "exceeds a limit of the database (size or nesting)",
    }
    state = getattr(exc, "sqlstate", "") or ""
    reason = " ".join(str(getattr(exc, "message", exc)).split())[:200]
    return Unstorable(f"the message {what.get(state[:2], 'cannot be stored')}: {reason}")


class Store:
    """All SQL the gateway runs, behind named methods."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # -- health ------------------------------------------------------------------------------

    async def ping(self) -> None:
        """A health check answers within seconds, whatever the database does."""
        async with self.pool.acquire(timeout=5) as conn:
            await conn.fetchval("SELECT 1", timeout=5)

    # -- accept (group commit) ---------------------------------------------------------------

    async def insert_messages(
        self, batch: Sequence[NewMessage], timeout: float | None = None
    ) -> InsertResult:
        """Commit a batch of messages and their deliveries in one statement, with a NOTIFY.

        A message that is not inserted either replays an idempotency key (``existing`` says
        which message holds it), was committed already by an earlier try of the same batch, or
        holds text the database cannot store (``refused``). A data error of the statement
        raises :class:`Unstorable` (a batch of one: that message's error; a larger batch is
        split by the caller). ``timeout`` (default: the pool's) bounds the wait for a
        connection and the statement; when it passes, asyncpg cancels the statement on the
        server, which commits nothing unless it had committed already.
        """
        kept, payload, refused = _encode_storable(batch)
        if not kept:
            return InsertResult(frozenset(), {}, refused)
        # The acquire timeout is also how long releasing the connection may wait for asyncpg
        # to cancel a statement that timed out: one timeout bounds all three.
        async with self.pool.acquire(timeout=timeout) as conn:
            try:
                row = await conn.fetchrow(
                    Q["insert_messages"],
                    payload,
                    [m.id for m in kept],
                    [m.text for m in kept],
                    [m.html for m in kept],
                    [m.raw for m in kept],
                    timeout=timeout,
                )
            except ITEM_ERRORS as exc:
                raise _refusal(exc) from None
            skipped = frozenset(row["skipped"])
            existing: dict[tuple[str, str], tuple[uuid.UUID, bytes | None]] = {}
            for m in kept:
                if m.idempotency_key is None or m.id not in skipped:
                    continue
                key = (m.idempotency_scope or "", m.idempotency_key)
                if key not in existing:  # committed before ours: ON CONFLICT waited for it
                    found = await conn.fetchrow(
                        Q["find_idempotent"],
                        m.idempotency_scope,
                        m.idempotency_key,
                        timeout=timeout,
                    )
                    existing[key] = (found["id"], found["request_hash"])
        return InsertResult(skipped, existing, refused)

    # -- reading messages --------------------------------------------------------------------

    async def message(
        self, message_id: uuid.UUID
    ) -> tuple[MessageRow, list[DeliveryRow], list[EventRow]] | None:
        # one snapshot: a delivery's status and its events must agree (read separately, a
        # delivery could show 'sending' next to the 'sent' event its next statement wrote)
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
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

        try:
            await conn.add_listener(NOTIFY_CHANNEL, on_notify)
        except BaseException:  # cancelled mid-LISTEN (a start that fails): give it back
            await asyncio.shield(self.pool.release(conn, timeout=5))
            raise

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

    # -- password attempts (gateway/throttle.py) ----------------------------------------------

    async def count_attempt(
        self, scope: str, keys: Sequence[tuple[str, str]], window_seconds: float
    ) -> dict[tuple[str, str], tuple[int, float]]:
        """Count one attempt on each (name, address) counter, atomically; return each counter's
        (attempts including this one, seconds left in its window)."""
        names, addresses = [k[0] for k in keys], [k[1] for k in keys]
        records = await self.pool.fetch(
            THROTTLE_Q["auth_attempt"], scope, names, addresses, window_seconds
        )
        return {(r["name"], r["address"]): (r["attempts"], r["remaining"]) for r in records}

    async def release_attempt(
        self, scope: str, keys: Sequence[tuple[str, str]], clear_pair: bool
    ) -> None:
        names, addresses = [k[0] for k in keys], [k[1] for k in keys]
        await self.pool.execute(THROTTLE_Q["auth_release"], scope, names, addresses, clear_pair)

    async def prune_attempts(self, window_seconds: float) -> None:
        await self.pool.execute(THROTTLE_Q["auth_prune"], window_seconds)

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
        records = await self.pool.fetch(Q["list_accounts"], channel, contains(search))
        return _rows(AccountRow, records)

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
