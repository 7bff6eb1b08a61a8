"""Relay users: SMTP AUTH credentials, stored as argon2id hashes and checked off the event loop.

Hashes are made and checked by ``gateway.passwords``: in worker threads, within one budget
shared with the console; an unknown user costs the same as a wrong password, so timing does not
tell which user names exist. Guessing is limited by ``gateway.throttle`` (see ``auth``).
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

import msgspec
from msgspec import Meta

from gateway.errors import Invalid, NotFound
from gateway.passwords import PASSWORDS, Passwords
from gateway.relay.store import RelayStore, RelayUserRow
from gateway.relay.validate import unstorable

log = logging.getLogger(__name__)

MIN_PASSWORD = 12
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

    def __init__(self, store: RelayStore, passwords: Passwords = PASSWORDS) -> None:
        self.store = store
        self.passwords = passwords
        self._noted: dict[str, float] = {}  # user -> when its last_login_at was last written

    async def create(self, body: RelayUserIn) -> RelayUserView:
        if len(body.password) < MIN_PASSWORD:
            raise Invalid(f"a relay password needs at least {MIN_PASSWORD} characters", "password")
        if body.password.strip() != body.password or body.password == body.username:
            raise Invalid(
                "the password must not be the user name or start or end with a space", "password"
            )
        row = await self.store.insert_user(body.username, await self.passwords.hash(body.password))
        log.info("relay user %r created", body.username)
        return view(row)

    async def list(self) -> list[RelayUserView]:
        return [view(r) for r in await self.store.list_users()]

    async def delete(self, username: str) -> None:
        if not await self.store.delete_user(username):
            raise NotFound(f"no relay user named {username!r}", "username")
        log.info("relay user %r deleted", username)

    async def verify(self, username: str, password: str) -> bool:
        """True if the credentials are right. Database trouble raises (AUTH answers 454), and
        so does a server too busy to check (``PasswordsBusy``)."""
        # a name the database cannot hold (a NUL, bytes that are not UTF-8) belongs to no one
        stored = None if unstorable(username) else await self.store.user_hash(username)
        ok, rehashed = await self.passwords.verify(stored, password)
        if stored is None or not ok:
            return False
        now = time.monotonic()
        last = self._noted.get(username)
        if rehashed or last is None or now - last >= LOGIN_NOTE_SECONDS:
            await self.store.logged_in(username, rehashed)  # not a write for every session
            if len(self._noted) > 10_000:
                self._noted.clear()
            self._noted[username] = now
        return True
