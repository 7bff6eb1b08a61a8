"""Sender accounts: checked by the channel, secrets sealed at rest, masked on the way out.

A stored secret only ever goes where it went when it was entered: an edit that changes a
destination field (host, port, TLS, endpoint ...) must give every stored secret again, or it is
refused before the channel is asked to check anything (the check would log in to the new place
with the stored secret).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec

from gateway.channel import (
    AccountInvalid,
    AccountRef,
    Channel,
    destination_fields,
    secret_fields,
)
from gateway.crypto import SecretBox
from gateway.errors import Invalid, NotFound, split_validation_error
from gateway.model import AccountRow
from gateway.plugins import Plugins
from gateway.store import Store

log = logging.getLogger(__name__)

MASK = "********"
VALIDATE_TIMEOUT = 30.0


class AccountView(msgspec.Struct, frozen=True):
    """An account as the API shows it: secret fields masked, never returned."""

    name: str
    channel: str
    sandbox: bool
    config: dict[str, Any]
    revision: int
    created_at: str
    updated_at: str


def _config_field(field: str | None) -> str:
    return f"config.{field}" if field else "config"


class SecretRequired(Invalid):
    """A destination changed while stored secrets were kept: they must be entered again.

    ``field`` names the first such secret (``config.<name>``); ``secrets`` lists them all (wire
    names), so a form can mark each one as required again.
    """

    code = "secret_required"

    def __init__(self, secrets: list[str], changed: list[str]) -> None:
        names = ", ".join(secrets)
        super().__init__(
            f"{', '.join(changed)} changed: enter {names} again"
            " (a stored secret is never sent to a new destination)",
            _config_field(secrets[0]),
        )
        self.secrets = secrets
        self.changed = changed


def _plain(account_type: type, config: dict[str, Any]) -> dict[str, Any] | None:
    """``config`` as the type normalises it (trailing slashes, defaults), or None if it no
    longer decodes (then every destination counts as changed)."""
    try:
        return msgspec.to_builtins(msgspec.convert(config, account_type))
    except (msgspec.ValidationError, AccountInvalid):
        return None


def _holds_something(value: Any) -> bool:
    return value not in (None, "", {}, [])  # an empty secret has nothing to give away


def kept_secrets_check(
    account_type: type, stored: dict[str, Any], typed: Any, given: set[str]
) -> None:
    """Raise SecretRequired if ``typed`` (the edited account) would send a stored secret that
    was not ``given`` in this edit to a changed destination.

    ``stored`` is the full config as saved (secrets in clear). A secret counts as given when
    the edit set it to anything but the mask (a new value, or null to clear it).
    """
    new = msgspec.to_builtins(typed)
    secrets = secret_fields(account_type)
    kept = [
        k
        for k in new
        if k in secrets and k not in given and k in stored and _holds_something(new[k])
    ]
    if not kept:
        return
    old = _plain(account_type, stored) or {}
    order = [f.encode_name for f in msgspec.structs.fields(account_type)]
    where = destination_fields(account_type)
    changed = [f for f in order if f in where and old.get(f) != new.get(f)]
    if changed:
        raise SecretRequired(kept, changed)


class Accounts:
    """The account service the API and the console share; it also resolves accounts for sends."""

    def __init__(self, store: Store, plugins: Plugins, box: SecretBox) -> None:
        self.store = store
        self.plugins = plugins
        self.box = box
        self._resolved: dict[int, tuple[AccountRow, AccountRef]] = {}

    def _channel(self, name: str) -> Channel:
        channel = self.plugins.channel(name)
        if channel is None:
            known = ", ".join(sorted(self.plugins.channels)) or "none"
            raise Invalid(f"unknown channel {name!r} (loaded: {known})", "channel")
        return channel

    def _decode(self, channel: Channel, config: dict[str, Any]) -> Any:
        try:
            typed = msgspec.convert(config, channel.account_type)
        except msgspec.ValidationError as exc:
            cause = exc.__cause__
            if isinstance(cause, AccountInvalid):  # raised by the account type's own checks
                raise Invalid(cause.reason, _config_field(cause.field)) from None
            message, field = split_validation_error(exc)
            raise Invalid(message, _config_field(field)) from None
        check = getattr(typed, "check", None)
        if callable(check):
            try:
                check()
            except AccountInvalid as exc:
                raise Invalid(exc.reason, _config_field(exc.field)) from None
        return typed

    async def _validate(self, channel: Channel, name: str, typed: Any) -> None:
        ref = AccountRef(name=name, revision=0, config=typed)
        try:
            await asyncio.wait_for(channel.validate_account(ref), VALIDATE_TIMEOUT)
        except AccountInvalid as exc:
            raise Invalid(exc.reason, _config_field(exc.field)) from None
        except TimeoutError:
            raise Invalid(
                f"the provider did not answer within {VALIDATE_TIMEOUT:.0f}s", "config"
            ) from None

    def _split(self, channel: Channel, typed: Any) -> tuple[dict[str, Any], bytes | None]:
        plain = msgspec.to_builtins(typed)
        secrets = {k: plain.pop(k) for k in secret_fields(channel.account_type) if k in plain}
        secrets = {k: v for k, v in secrets.items() if v is not None}
        return plain, (self.box.seal(secrets) if secrets else None)

    def _full_config(self, row: AccountRow) -> dict[str, Any]:
        config = dict(row.config)
        if row.secrets:
            config.update(self.box.open(row.secrets))
        return config

    def view(self, row: AccountRow) -> AccountView:
        config = dict(row.config)
        if row.secrets:
            for key in self.box.open(row.secrets):
                config[key] = MASK
        return AccountView(
            row.name,
            row.channel,
            row.sandbox,
            config,
            row.revision,
            row.created_at.isoformat(),
            row.updated_at.isoformat(),
        )

    async def create(
        self, channel_name: str, name: str, config: dict[str, Any] | None, sandbox: bool
    ) -> AccountView:
        channel = self._channel(channel_name)
        if sandbox:
            row = await self.store.insert_account(channel.name, name, True, {}, None)
            return self.view(row)
        if config is None:
            raise Invalid("config is required unless the account is a sandbox", "config")
        typed = self._decode(channel, config)
        await self._validate(channel, name, typed)
        plain, sealed = self._split(channel, typed)
        return self.view(await self.store.insert_account(channel.name, name, False, plain, sealed))

    async def get_row(self, name: str) -> AccountRow:
        row = await self.store.account_by_name(name)
        if row is None:
            raise NotFound(f"no account named {name!r}", "name")
        return row

    async def get(self, name: str) -> AccountView:
        return self.view(await self.get_row(name))

    async def list(
        self, channel: str | None = None, search: str | None = None
    ) -> list[AccountView]:
        return [self.view(r) for r in await self.store.list_accounts(channel, search)]

    async def update(self, name: str, changes: dict[str, Any]) -> AccountView:
        """Merge ``changes`` into the config (a masked or missing secret keeps its value,
        unless a destination field changes: then it must be given again)."""
        row = await self.get_row(name)
        if row.sandbox:
            raise Invalid("a sandbox account has no configuration to change", "config")
        channel = self._channel(row.channel)
        stored = self._full_config(row)
        config = dict(stored)
        secrets = secret_fields(channel.account_type)
        given = {k for k, v in changes.items() if k in secrets and v != MASK}
        for key, value in changes.items():
            if value == MASK and key in secrets:
                continue
            config[key] = value
        typed = self._decode(channel, config)
        kept_secrets_check(channel.account_type, stored, typed, given)  # before any connection
        await self._validate(channel, name, typed)
        plain, sealed = self._split(channel, typed)
        return self.view(await self.store.update_account(name, plain, sealed, row.revision))

    async def delete(self, name: str) -> None:
        if not await self.store.delete_account(name):
            raise NotFound(f"no account named {name!r}", "name")

    async def resolve(
        self, account_id: int, revision: int | None
    ) -> tuple[AccountRow, AccountRef] | None:
        """The account for sending, typed and with secrets; cached until its revision changes."""
        cached = self._resolved.get(account_id)
        if cached is not None and cached[0].revision == revision:
            return cached
        row = await self.store.account_by_id(account_id)
        if row is None:
            self._resolved.pop(account_id, None)
            return None
        channel = self.plugins.channel(row.channel)
        config: Any = None
        if channel is not None and not row.sandbox:
            config = msgspec.convert(self._full_config(row), channel.account_type)
        resolved = (row, AccountRef(name=row.name, revision=row.revision, config=config))
        self._resolved[account_id] = resolved
        return resolved
