"""EmailChannel: SMTP submission with pooled sessions, classification and account validation."""

from __future__ import annotations

import asyncio
import logging
from typing import ClassVar

from gateway.channel import (
    AccountInvalid,
    AccountRef,
    Channel,
    ContentKind,
    Failed,
    Outcome,
    Outgoing,
)
from plugins.email.account import EmailAccount, account_from
from plugins.email.addresses import is_plain_address, parse_mailbox
from plugins.email.compose import compose
from plugins.email.pool import SmtpPool
from plugins.email.relayed import compose_relayed
from plugins.email.transaction import deliver
from plugins.email.validate import validate

log = logging.getLogger(__name__)


class EmailChannel(Channel):
    """E-mail over SMTP: one session pool per account revision, reused between sends."""

    name: ClassVar[str] = "email"
    content_kinds: ClassVar[frozenset[ContentKind]] = frozenset(
        {ContentKind.TEXT, ContentKind.RICH}
    )
    account_type: ClassVar[type[EmailAccount]] = EmailAccount
    unit: ClassVar[str] = "message"

    def check_recipient(self, recipient: str) -> str | None:
        if is_plain_address(recipient):  # the common case, without the full parser
            return None
        try:
            parse_mailbox(recipient)
        except ValueError as exc:
            return str(exc)
        return None

    def __init__(self) -> None:
        self._pools: dict[str, tuple[int, SmtpPool]] = {}  # account name -> newest revision
        self._closing: set[asyncio.Task[None]] = set()

    def _close_later(self, pool: SmtpPool) -> None:
        task = asyncio.get_running_loop().create_task(pool.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _pool(self, account: AccountRef, config: EmailAccount) -> tuple[SmtpPool, bool]:
        """The pool for this account revision, and whether it is a one-off to close after use."""
        label = f"{account.name}@{account.revision}"
        current = self._pools.get(account.name)
        if current is not None and current[0] == account.revision:
            return current[1], False
        if current is not None and current[0] > account.revision:
            return SmtpPool(config, label), True  # a late send of an edited account
        if current is not None:
            log.info("e-mail account %s edited: closing sessions of %s", label, current[1].label)
            self._close_later(current[1])
        pool = SmtpPool(config, label)
        self._pools[account.name] = (account.revision, pool)
        return pool, False

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        """Submit one delivery; SMTP and network trouble come back as Retry or Failed."""
        try:
            config = account_from(account.config)
        except AccountInvalid as exc:
            return Failed(reason=exc.reason)
        try:
            if outgoing.raw is not None:  # relayed mail: the original MIME, as it came
                mail = compose_relayed(config, outgoing)
            else:
                mail = compose(config, outgoing)
        except ValueError as exc:
            return Failed(reason=str(exc))
        pool, one_off = self._pool(account, config)
        try:
            outcome = await deliver(pool, mail)
        finally:
            if one_off:
                await pool.close()
        log.debug("e-mail %s via %s: %s", outgoing.delivery_id, pool.label, type(outcome).__name__)
        return outcome

    async def validate_account(self, account: AccountRef) -> None:
        """Prove the account with a real server conversation on a fresh session; sends no mail."""
        await validate(account_from(account.config))

    async def close(self) -> None:
        """QUIT every pooled session."""
        pools = [pool for _, pool in self._pools.values()]
        self._pools.clear()
        await asyncio.gather(*(pool.close() for pool in pools), *self._closing)
