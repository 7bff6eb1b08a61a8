"""Where the database is: a real server by URL, or the embedded PostgreSQL in the data folder."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from gateway.config import ConfigError

log = logging.getLogger(__name__)


# pgserver asks platformdirs for a runtime folder, which warns when XDG_RUNTIME_DIR is unset
# (as for root on a server) and then uses /tmp: harmless, and not the operator's concern.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def embedded_url(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL in ``data_dir/pg`` and return its URL."""
    try:
        import pgserver
    except ImportError:  # pragma: no cover - a dependency, but say what is missing
        raise ConfigError(
            "MSGGATE_DATABASE_URL is unset and the embedded PostgreSQL (pgserver) is not installed"
        ) from None
    pgdata = data_dir / "pg"
    pgdata.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    _forget_dead_users(pgdata)
    # cleanup_mode="stop": processes that use the server (a running `msggate serve`, a
    # `msggate apikey` beside it) share it; the last one to exit stops it.
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    return server.get_uri()


def _forget_dead_users(pgdata: Path) -> None:
    """Take processes that no longer exist off pgserver's list of the server's users.

    pgserver stops the server when the last process on that list exits (at its exit, through
    ``atexit``). A process killed before it could take itself off (SIGKILL, or a signal during
    its start) stayed on it for good, so no later exit ever stopped the server.
    """
    import psutil  # a dependency of pgserver
    from pgserver.postgres_server import PostgresServer

    users = pgdata / ".handle_pids.json"  # pgserver's list (its DiskList), under its lock
    lock = getattr(PostgresServer, "_lock", None)
    if lock is None:  # pragma: no cover - a pgserver that keeps its list differently
        return
    with lock:
        try:
            pids = json.loads(users.read_text())
        except FileNotFoundError:
            return
        except ValueError:
            pids = []
        alive = [p for p in pids if isinstance(p, int) and _running(psutil, p)]
        if alive != pids:
            gone = [p for p in pids if p not in alive]
            log.info("embedded PostgreSQL: forgetting users that have exited: %s", gone)
            users.write_text(json.dumps(alive))


def _running(psutil: Any, pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, schema="pg_catalog", encoder=_encode_json, decoder=msgspec.json.decode
        )


async def _reset(conn: asyncpg.Connection) -> None:
    """Nothing to undo when a connection goes back to the pool: the gateway sets no session
    state (no SET, no session advisory locks, no WITH HOLD cursors; LISTEN is undone by the
    stop() that Store.listen returns). asyncpg's default reset runs ``SELECT
    pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`` on every release: one more
    round trip per query. asyncpg still rolls back a transaction left open before this."""


def _encode_json(value: object) -> str:
    return msgspec.json.encode(value).decode()


class _Pool(asyncpg.Pool):
    """asyncpg's pool, but ``acquire()`` gives up after ``acquire_timeout`` by default: asyncpg
    waits forever, so with the database hung and every connection busy, callers queued for one
    would hang with it (each holder is itself bounded by the command timeout)."""

    acquire_timeout: float | None = None

    def acquire(self, *, timeout: float | None = None) -> asyncpg.pool.PoolAcquireContext:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def open_pool(url: str, size: int, timeout: float = 30.0) -> asyncpg.Pool:
    """A connection pool with JSON codecs; a clear ConfigError when the server is unreachable.

    ``timeout`` bounds every database call: connecting, waiting for a free connection, and
    each statement (unless the call gives its own, as the accept path does).
    """
    pool = _Pool(
        url,
        min_size=min(2, size),
        max_size=size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        init=_init_connection,
        reset=_reset,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=timeout,
        timeout=timeout,  # connecting
    )
    pool.acquire_timeout = timeout
    try:
        return await pool
    except (OSError, asyncpg.PostgresError) as exc:
        raise ConfigError(f"MSGGATE_DATABASE_URL: cannot connect to the database: {exc}") from None
