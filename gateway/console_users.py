"""Console users (登录): argon2 password hashes, sessions in PostgreSQL, throttled logins.

Shared by the web console (``admin``) and ``msggate user add``. Hashes are made and checked by
``gateway.passwords`` (in threads, within one budget; an unknown name costs as much as a wrong
password). Every login is counted by ``gateway.throttle`` before its password is checked: per
user name and address, per address and per name, in the database, so every node sees them.

A session is a random id given to the browser once; the database keeps its SHA-256 and a
per-session CSRF token. Sessions end after ``SESSION_IDLE_SECONDS`` without a request, and at
the latest ``SESSION_MAX_SECONDS`` after login; a password change ends the user's other sessions.
"""

from __future__ import annotations

import hashlib
import logging
import random
import secrets
import time
import zoneinfo
from typing import Annotated

import msgspec
from msgspec import Meta

from gateway.console_store import ConsoleStore, ConsoleUserRow, SessionRow
from gateway.errors import Conflict, Invalid, NotFound, Unauthorized
from gateway.passwords import PASSWORDS, Passwords
from gateway.sql import contains
from gateway.store import Store
from gateway.throttle import Throttle

log = logging.getLogger(__name__)

ROLES = ("admin", "operator", "readonly")
LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"
DEFAULT_TIME_ZONE = "Asia/Shanghai"
FIRST_USER = "admin"

MIN_PASSWORD = 10
MAX_PASSWORD = 1024

SESSION_IDLE_SECONDS = 8 * 3600.0
SESSION_MAX_SECONDS = 7 * 24 * 3600.0
TOUCH_SECONDS = 60.0  # last_seen_at is written at most this often per session

WRONG_CREDENTIALS = "wrong user name or password"


class ConsoleUserIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new console user."""

    name: Annotated[str, Meta(min_length=1, max_length=64)]
    password: Annotated[str, Meta(max_length=MAX_PASSWORD)]
    role: str = "operator"
    language: str = DEFAULT_LANGUAGE
    time_zone: str = DEFAULT_TIME_ZONE

    def __repr__(self) -> str:  # the password must never reach a log through a repr
        return f"ConsoleUserIn(name={self.name!r}, role={self.role!r})"


class Login(msgspec.Struct, frozen=True):
    """A successful login: the session id for the cookie (shown only now) and the session."""

    token: str
    session: SessionRow

    def __repr__(self) -> str:
        return f"Login(user={self.session.user.name!r})"


def token_hash(token: str) -> bytes:
    # A fast hash is right: session ids are 256-bit random, there is nothing to brute-force.
    return hashlib.sha256(token.encode()).digest()


def check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise Invalid("a user name is 1-64 characters", "name")
    if any(c.isspace() or not c.isprintable() or c == "/" for c in name):
        raise Invalid("a user name has no spaces, control characters or '/'", "name")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", "role")
    return role


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise Invalid(f"language must be one of {', '.join(LANGUAGES)}", "language")
    return language


def check_time_zone(time_zone: str) -> str:
    time_zone = time_zone.strip()
    try:
        if not time_zone or len(time_zone) > 64:
            raise ValueError(time_zone)
        zoneinfo.ZoneInfo(time_zone)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise Invalid(
            f"{time_zone!r} is not a time zone name (e.g. Asia/Shanghai, Europe/Berlin, UTC)",
            "time_zone",
        ) from None
    return time_zone


def check_password(password: str, name: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"a console password needs at least {MIN_PASSWORD} characters", field)
    if len(password) > MAX_PASSWORD:
        raise Invalid(f"a console password has at most {MAX_PASSWORD} characters", field)
    if password.strip() != password or password.lower() == name.lower():
        raise Invalid("the password must not be the user name or start or end with a space", field)


class ConsoleUsers:
    """Create, list, change and delete console users; log them in and out."""

    def __init__(
        self,
        store: ConsoleStore,
        throttle: Throttle | None = None,
        passwords: Passwords = PASSWORDS,
    ) -> None:
        self.store = store
        self.throttle = throttle or Throttle(Store(store.pool), "console")
        self.passwords = passwords

    # -- users -------------------------------------------------------------------------------

    async def create(
        self, body: ConsoleUserIn, must_change_password: bool = False
    ) -> ConsoleUserRow:
        name = check_name(body.name)
        role = check_role(body.role)
        check_password(body.password, name)
        language = check_language(body.language)
        time_zone = check_time_zone(body.time_zone)
        password_hash = await self.passwords.hash(body.password)
        row = await self.store.insert_user(
            name, password_hash, role, language, time_zone, must_change_password
        )
        log.info("console user %r created (%s)", name, role)
        return row

    async def list(self, search: str | None = None) -> list[ConsoleUserRow]:
        pattern = None
        if search and search.strip():
            pattern = contains(search.strip()[:64])
        return await self.store.list_users(pattern)

    async def get(self, user_id: int) -> ConsoleUserRow:
        row = await self.store.user_by_id(user_id)
        if row is None:
            raise NotFound(f"no console user with id {user_id}", "id")
        return row

    async def count(self) -> int:
        return await self.store.count_users()

    async def update(
        self, user_id: int, role: str, language: str, time_zone: str
    ) -> ConsoleUserRow:
        """Change role, language and time zone; the last administrator stays one."""
        current = await self.get(user_id)
        row = await self.store.update_user(
            user_id, check_role(role), check_language(language), check_time_zone(time_zone)
        )
        if row is None:
            raise Conflict(
                f"{current.name!r} is the last administrator: make another user an administrator"
                " first",
                "role",
            )
        if row.role != current.role:
            log.info("console user %r is now %s", row.name, row.role)
        return row

    async def set_password(
        self,
        user_id: int,
        password: str,
        must_change: bool = False,
        keep_session: str | None = None,
    ) -> None:
        """Set a new password; every session of the user but ``keep_session`` ends."""
        user = await self.get(user_id)
        check_password(password, user.name)
        password_hash = await self.passwords.hash(password)
        if not await self.store.set_password(user_id, password_hash, must_change):
            raise NotFound(f"no console user with id {user_id}", "id")
        keep = token_hash(keep_session) if keep_session else None
        await self.store.delete_user_sessions(user_id, keep)
        log.info("console user %r: password changed", user.name)

    async def change_own_password(
        self,
        user: ConsoleUserRow,
        current: str,
        new: str,
        keep_session: str | None,
        remote: str | None = None,
    ) -> None:
        """A user's own change: the current password first (counted like a login from
        ``remote``), and the new one must differ."""
        async with self.throttle.attempt(user.name, remote or "unknown") as attempt:
            login = await self.store.user_login(user.name)
            ok, _ = await self.passwords.verify(login[1] if login else None, current)
            if not ok:
                await attempt.failed()
                raise Invalid("the current password is not right", "current_password")
            await attempt.succeeded()
        if new == current:
            raise Invalid("choose a password different from the current one", "new_password")
        check_password(new, user.name, "new_password")
        await self.set_password(user.id, new, False, keep_session)

    async def delete(self, user_id: int, acting_user_id: int | None = None) -> ConsoleUserRow:
        user = await self.get(user_id)
        if user_id == acting_user_id:
            raise Conflict("you cannot delete yourself; another administrator can", "id")
        if not await self.store.delete_user(user_id):
            raise Conflict(f"{user.name!r} is the last administrator and cannot be deleted", "id")
        log.info("console user %r deleted", user.name)
        return user

    async def first_user(self) -> tuple[str, str] | None:
        """With no console user yet, create administrator ``admin`` with a random password that
        must be changed at first login; return (name, password) to show once, else None."""
        if await self.store.count_users():
            return None
        password = secrets.token_urlsafe(12)
        body = ConsoleUserIn(name=FIRST_USER, password=password, role="admin")
        try:
            await self.create(body, must_change_password=True)
        except Conflict:  # another node made it meanwhile
            return None
        return FIRST_USER, password

    # -- login and sessions ------------------------------------------------------------------

    async def login(
        self, name: str, password: str, remote: str | None, user_agent: str | None
    ) -> Login:
        """Check the credentials and open a session; Unauthorized, TooManyAttempts (refused
        before checking) or PasswordsBusy if not."""
        name = name.strip()[:64]
        where = remote or "unknown"
        if not name or not password:
            raise Unauthorized(WRONG_CREDENTIALS, "name")
        async with self.throttle.attempt(name, where) as attempt:
            found = await self.store.user_login(name)
            stored = found[1] if found else None
            ok, rehashed = await self.passwords.verify(stored, password[:MAX_PASSWORD])
            if not ok or found is None:
                log.info("console login failed for %r from %s", name, where)
                await attempt.failed()
                raise Unauthorized(WRONG_CREDENTIALS, "name")
            await attempt.succeeded()
        user_id = found[0]
        await self.store.logged_in(user_id, rehashed)
        token = secrets.token_urlsafe(32)
        await self.store.insert_session(
            token_hash(token),
            user_id,
            secrets.token_urlsafe(32),
            remote,
            (user_agent or "")[:300] or None,
            SESSION_IDLE_SECONDS,
        )
        if random.random() < 0.05:
            await self.store.prune_sessions(SESSION_MAX_SECONDS)
        session = await self.store.session(token_hash(token), SESSION_MAX_SECONDS)
        assert session is not None
        log.info("console user %r logged in from %s", name, where)
        return Login(token, session)

    async def session(self, token: str | None) -> SessionRow | None:
        """The live session behind a cookie value, or None; keeps it alive while it is used."""
        if not token or len(token) > 100:
            return None
        digest = token_hash(token)
        session = await self.store.session(digest, SESSION_MAX_SECONDS)
        if session is None:
            return None
        if (time.time() - session.last_seen_at.timestamp()) > TOUCH_SECONDS:
            await self.store.touch_session(digest, SESSION_IDLE_SECONDS)
        return session

    async def logout(self, token: str | None) -> None:
        if token and len(token) <= 100:
            await self.store.delete_session(token_hash(token))
