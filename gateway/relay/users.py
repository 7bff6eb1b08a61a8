"""Relay users: SMTP AUTH credentials, stored as argon2id hashes and checked off the event loop.

argon2 is slow on purpose (about 0.2 s and 64 MiB per check), so every hash and verify runs in
a worker thread, at most ``HASH_CONCURRENCY`` at a time. An unknown user costs the same as a
wrong password, so timing does not tell which user names exist.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated

import argon2
import msgspec
from msgspec import Meta

from gateway.errors import Invalid, NotFound
from gateway.relay.store import RelayStore, RelayUserRow

log = logging.getLogger(__name__)

MIN_PASSWORD = 12
HASH_CONCURRENCY = 4
LOGIN_NOTE_SECONDS = 60.0  # last_login_at is precise to about this


Username = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\s\x00]+$")]


class RelayUserIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A relay user: the user name and password an application gives with SMTP AUTH."""

    username: Username
    # the minimum is the service's check (its message says why); the schema declares it too
    password: Annotated[
        str,
        Meta(
            max_length=1024,
            description=f"at least {MIN_PASSWORD} characters, not the user name",
            extra_json_schema={"minLength": MIN_PASSWORD},
        ),
    ]

    def __repr__(self) -> str:  # the password must never reach a log through a repr
        return f"RelayUserIn(username={self.username!r})"


class RelayUserView(msgspec.Struct, frozen=True):
    """A relay user as the API shows it (never the password or its hash)."""

    username: str
    created_at: str
    last_login_at: str | None


def view(row: RelayUserRow) -> RelayUserView:
    last = row.last_login_at.isoformat() if row.last_login_at else None
    return RelayUserView(row.username, row.created_at.isoformat(), last)


class RelayUsers:
    """Create, list, delete and verify relay users."""

    def __init__(self, store: RelayStore, hasher: argon2.PasswordHasher | None = None) -> None:
        self.store = store
        self.hasher = hasher or argon2.PasswordHasher()
        self._slots = asyncio.Semaphore(HASH_CONCURRENCY)
        self._dummy: str | None = None
        self._noted: dict[str, float] = {}  # user -> when its last_login_at was last written

    async def _hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hasher.hash, password)

    async def create(self, body: RelayUserIn) -> RelayUserView:
        if len(body.password) < MIN_PASSWORD:
            raise Invalid(f"a relay password needs at least {MIN_PASSWORD} characters", "password")
        if body.password.strip() != body.password or body.password == body.username:
            raise Invalid(
                "the password must not be the user name or start or end with a space", "password"
            )
        row = await self.store.insert_user(body.username, await self._hash(body.password))
        log.info("relay user %r created", body.username)
        return view(row)

    async def list(self) -> list[RelayUserView]:
        return [view(r) for r in await self.store.list_users()]

    async def delete(self, username: str) -> None:
        if not await self.store.delete_user(username):
            raise NotFound(f"no relay user named {username!r}", "username")
        log.info("relay user %r deleted", username)

    def _check(self, stored: str, password: str) -> tuple[bool, str | None]:
        """(matches, new hash if the stored one uses old parameters); runs in a thread."""
        try:
            self.hasher.verify(stored, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False, None
        if self.hasher.check_needs_rehash(stored):
            return True, self.hasher.hash(password)
        return True, None

    async def verify(self, username: str, password: str) -> bool:
        """True if the credentials are right. Database trouble raises (AUTH answers 454)."""
        stored = await self.store.user_hash(username)
        if stored is None:
            if self._dummy is None:
                self._dummy = await self._hash("not a password: equal time for unknown users")
            stored, username = self._dummy, ""
        async with self._slots:
            ok, rehashed = await asyncio.to_thread(self._check, stored, password)
        if ok and username:
            now = time.monotonic()
            last = self._noted.get(username)
            if rehashed or last is None or now - last >= LOGIN_NOTE_SECONDS:
                await self.store.logged_in(username, rehashed)  # not a write for every session
                if len(self._noted) > 10_000:
                    self._noted.clear()
                self._noted[username] = now
            return True
        return False
