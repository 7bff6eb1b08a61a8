"""A small pool of open SMTP sessions for one account revision, reused from send to send."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiosmtplib

from plugins.email.account import EmailAccount
from plugins.email.session import open_session

log = logging.getLogger(__name__)

# Servers drop idle clients (Postfix after 300 s, many providers much sooner): an idle session
# older than this is closed rather than risk a stale one.
IDLE_LIMIT = 60.0
QUIT_TIMEOUT = 5.0


@dataclass(slots=True)
class Lease:
    """A session lent to one send; set ``keep`` when it is clean enough to be reused."""

    smtp: aiosmtplib.SMTP
    reused: bool
    keep: bool = False


async def quit_quietly(smtp: aiosmtplib.SMTP) -> None:
    """QUIT and close, ignoring a server that is already gone."""
    try:
        if smtp.is_connected:
            await asyncio.wait_for(smtp.quit(), QUIT_TIMEOUT)
    except (aiosmtplib.SMTPException, OSError):
        pass
    finally:
        smtp.close()


class SmtpPool:
    """At most ``account.max_connections`` sessions; each is either lent out or idle."""

    def __init__(self, account: EmailAccount, label: str, idle_limit: float | None = None) -> None:
        self.label = label  # account name and revision, for logs: never the config
        self._account = account
        self._idle_limit = IDLE_LIMIT if idle_limit is None else idle_limit
        self._slots = asyncio.Semaphore(account.max_connections)
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._closed = False

    def _take_idle(self) -> aiosmtplib.SMTP | None:
        """The most recently used live session, after closing the dead and the stale ones."""
        now = time.monotonic()
        fresh = []
        for smtp, since in self._idle:
            if smtp.is_connected and now - since < self._idle_limit:
                fresh.append((smtp, since))
            else:
                smtp.close()
        self._idle = fresh
        return self._idle.pop()[0] if self._idle else None

    @contextlib.asynccontextmanager
    async def lease(self, fresh: bool = False) -> AsyncIterator[Lease]:
        """Lend a session (an idle one unless ``fresh``, else a new one).

        Raises SessionFailed when a new session cannot be opened.
        """
        async with self._slots:
            smtp = None if fresh else self._take_idle()
            if smtp is None:
                smtp = await open_session(self._account)
                log.debug("smtp pool %s: new session", self.label)
                lease = Lease(smtp, reused=False)
            else:
                lease = Lease(smtp, reused=True)
            try:
                yield lease
            finally:
                if lease.keep and smtp.is_connected and not self._closed:
                    self._idle.append((smtp, time.monotonic()))
                else:
                    smtp.close()

    async def close(self) -> None:
        """QUIT the idle sessions; sessions still lent out are closed when returned."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(quit_quietly(smtp) for smtp, _ in idle))
