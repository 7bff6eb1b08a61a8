"""The relay's listening socket, on the gateway's own event loop (not aiosmtpd's threaded
Controller), opened and closed by a cleanup context of the aiohttp application.

The connection limits (per address, and a total cap kept below the open-file limit) are in
``gateway.relay.limits``; the per-session limits in ``gateway.relay.session``.

On shutdown the listener stops accepting, lets transactions that are being committed finish
(up to ``SHUTDOWN_GRACE`` seconds), tells idle clients 421 and closes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.config import ConfigError
from gateway.relay.access import parse_address
from gateway.relay.handler import RelayHandler
from gateway.relay.limits import FD_HEADROOM, AddressSlots, SessionLimits, connection_cap
from gateway.relay.services import RelayServices
from gateway.relay.session import RelaySMTP, replies
from gateway.relay.tls import server_context
from gateway.services import SERVICES
from gateway.store import UNAVAILABLE

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 10.0
# asyncio's default of 100 drops a burst of connects (the client then waits for its SYN to be
# sent again, seconds later); the kernel caps it at net.core.somaxconn.
BACKLOG = 1024
IDENT = "msggate ESMTP"
TOO_MANY = b"421 4.7.0 Too many connections; try again later\r\n"
SHUTTING_DOWN = b"421 4.3.2 Service shutting down; try again later\r\n"


class _Refuse(asyncio.Protocol):
    """Answers a connection over the limit with 421 and hangs up."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not isinstance(transport, asyncio.WriteTransport): uvloop's transports (those of
        # ``msggate serve``) are not its subclasses, and a failed check left the socket open.
        transport.write(TOO_MANY)  # type: ignore[attr-defined]
        transport.close()


class RelayListener:
    """The SMTP relay server: ``await start()``, ``port``, ``await close()``."""

    def __init__(self, relay: RelayServices) -> None:
        self.relay = relay
        self.handler = RelayHandler(relay)
        self.port = 0
        self.host = relay.settings.smtp_host
        self._server: asyncio.Server | None = None
        self._sessions: set[RelaySMTP] = set()
        self._replies = replies(relay.settings.smtp_max_message_size)
        self._tls = None
        s = relay.settings
        self.max_connections = s.smtp_max_connections
        self.limits = SessionLimits(
            max_commands=s.smtp_max_commands,
            session_timeout=s.smtp_session_timeout,
            slots=AddressSlots(s.smtp_max_connections_per_address),
            trusted=self._trusted,
        )

    async def _trusted(self, address: str) -> bool:
        """In the access list (asked only of an address over its connection limit)."""
        try:
            return (await self.relay.access.check(parse_address(address))).inside
        except UNAVAILABLE:
            return False  # no rules known: the limit applies

    def _session(self) -> asyncio.BaseProtocol:
        s = self.relay.settings
        if len(self._sessions) >= self.max_connections:
            log.warning("relay: %d connections open, refusing another", len(self._sessions))
            return _Refuse()
        smtp = RelaySMTP(
            self.handler,
            data_size_limit=s.smtp_max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.relay.hostname,
            ident=IDENT,
            tls_context=self._tls,
            require_starttls=False,  # clients in the access list may relay in the clear
            timeout=s.smtp_command_timeout,
            auth_required=False,  # decided per RCPT: AUTH or the access list
            auth_require_tls=not s.smtp_allow_plain_auth,
            loop=asyncio.get_running_loop(),
            data_timeout=s.smtp_data_timeout,
            replies=self._replies,
            limits=self.limits,
            on_lost=self._sessions.discard,
            bodies=self.relay.bodies,
        )
        self._sessions.add(smtp)
        return smtp

    async def start(self) -> RelayListener:
        s = self.relay.settings
        if not log.isEnabledFor(logging.DEBUG):  # aiosmtpd logs every command line at INFO
            logging.getLogger("mail.log").setLevel(logging.WARNING)
        self._tls = await asyncio.to_thread(server_context, s, self.relay.hostname)
        headroom = s.db_pool_size + s.dispatch_concurrency + FD_HEADROOM
        self.max_connections = connection_cap(s.smtp_max_connections, headroom)
        try:
            self._server = await asyncio.get_running_loop().create_server(
                self._session, s.smtp_host, s.smtp_port, reuse_address=True, backlog=BACKLOG
            )
        except OSError as exc:
            raise ConfigError(
                f"MSGGATE_SMTP_PORT={s.smtp_port}: cannot listen on {s.smtp_host}:"
                f" {exc.strerror or exc}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        mode = "AUTH after STARTTLS" if not s.smtp_allow_plain_auth else "AUTH also without TLS"
        log.info("SMTP relay listening on %s:%d (%s)", s.smtp_host, self.port, mode)
        return self

    async def close(self, grace: float = SHUTDOWN_GRACE) -> None:
        if self._server is None:
            return
        self._server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(s.in_data for s in self._sessions) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for smtp in list(self._sessions):
            if smtp.transport is not None and not smtp.transport.is_closing():
                if not smtp.in_data:
                    smtp.transport.write(SHUTTING_DOWN)  # type: ignore[attr-defined]
                smtp.transport.close()
        await self._server.wait_closed()
        self._server = None
        log.info("SMTP relay stopped")


async def relay_listener_ctx(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: the SMTP relay runs as long as the application does."""
    relay = app[SERVICES].relay
    if relay is None:
        yield
        return
    listener = await RelayListener(relay).start()
    relay.listener = listener
    try:
        yield
    finally:
        relay.listener = None
        await listener.close()
