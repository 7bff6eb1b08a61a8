"""aiosmtpd's SMTP protocol with msggate's session state, data timeout and reply texts.

aiosmtpd enforces SIZE, line length and the command timeout itself, but some of its replies
carry no enhanced status code (RFC 3463); ``push`` rewrites those few to the codes clients and
log scanners expect. The command timeout covers the wait for each command; while a message is
being sent (DATA up to the final ".") the longer ``data_timeout`` applies.

A client must not hold a session for ever without sending mail: besides the per-command
timeout (which every command restarts), the command phase has a deadline that only a finished
message (DATA up to its final reply) moves on, so trickled NOOPs, RSETs or recipient probes
cannot extend it; and a session takes at most ``max_commands`` commands. Either ends with a
421 and the connection closed (see ``gateway.relay.limits`` for the connection limits).
Command arguments that could not be stored or would inject a line are refused here
(``gateway.relay.validate``), and no reply carries control characters back to the client.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.bodies import BodyBudget
from gateway.relay import spool
from gateway.relay.limits import SessionLimits
from gateway.relay.route import Deliver
from gateway.relay.validate import command_refusal, safe_reply

log = logging.getLogger(__name__)


class RelaySession(Session):
    """One connection: aiosmtpd's session, plus the failed AUTH count."""

    login_data: Any = None  # aiosmtpd's deprecated property logs a warning on every AUTH

    def __init__(self, loop: Any) -> None:
        super().__init__(loop)
        self.auth_failures = 0
        self.verdict: tuple[float, Any] | None = None  # (until, access verdict), see handler

    @property
    def auth_user(self) -> str | None:
        return self.auth_data if self.authenticated and isinstance(self.auth_data, str) else None


class RelayEnvelope(Envelope):
    """One transaction: aiosmtpd's envelope, plus where each recipient goes."""

    def __init__(self) -> None:
        super().__init__()
        self.routes: dict[str, Deliver] = {}


def peer_address(session: Session | None) -> str:
    """The client's IP address as text (IPv4-mapped IPv6 shown as IPv4)."""
    peer = session.peer if session is not None else None
    host = peer[0] if isinstance(peer, tuple) and peer else str(peer or "")
    return host.removeprefix("::ffff:") if "." in host else host


@functools.lru_cache(maxsize=4096)
def _parse_address_argument(arg: str) -> tuple[str | None, str | None]:
    return SMTP._getaddr(_STOCK, arg)  # aiosmtpd's own parser, its result cached


class _Stock:
    local_part_limit = SMTP.local_part_limit


_STOCK: Any = _Stock()

TOO_MANY_COMMANDS = "421 4.7.0 Too many commands in one session (at most {limit}); reconnect"
SESSION_EXPIRED = (
    "421 4.4.2 No message sent in {seconds:g} seconds; closing connection (NOOP or RSET do"
    " not extend a session)"
)


class RelaySMTP(SMTP):
    """The protocol instance for one relay connection."""

    def __init__(
        self,
        *args: Any,
        data_timeout: float,
        replies: dict[str, str],
        limits: SessionLimits | None = None,
        on_lost: Callable[[RelaySMTP], None] | None = None,
        bodies: BodyBudget | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(*args, **kw)
        self.bodies = bodies  # DATA spooled, then handled within this budget (relay.spool)
        self.data_timeout = data_timeout
        self.in_data = False  # receiving or committing a message: shutdown waits for it
        self._replies = replies
        self._on_lost = on_lost
        self.limits = limits
        self.slot: str | None = None  # the address slot this session holds (limits.py)
        self.commands = 0
        self._deadline: asyncio.TimerHandle | None = None
        # Every command aiosmtpd dispatches goes through _command: one place for the limits.
        self._smtp_methods = {
            name: self._command(name, method) for name, method in self._smtp_methods.items()
        }

    def connection_lost(self, error: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._give_back_slot()
        if self._on_lost is not None:
            self._on_lost(self)
        super().connection_lost(error)

    def _give_back_slot(self) -> None:
        if self.slot is not None and self.limits is not None:
            self.limits.slots.give_back(self.slot)
            self.slot = None

    async def _handle_client(self) -> None:
        if self.limits is not None:
            # admit() takes a slot without awaiting anything, so a connection lost meanwhile
            # cannot miss giving it back; it awaits only to refuse or to let a listed one in.
            self.slot, refusal = await self.limits.admit(peer_address(self.session))
            if refusal is not None:
                if self.transport is not None:
                    self.transport.write(refusal.encode() + b"\r\n")  # type: ignore[attr-defined]
                    self.transport.close()
                return
            self._arm_deadline()
        await super()._handle_client()

    def _arm_deadline(self) -> None:
        """Start (again) the time the session has to send its next message."""
        if self._deadline is not None:
            self._deadline.cancel()
        assert self.limits is not None
        self._deadline = self.loop.call_later(self.limits.session_timeout, self._expired)

    def _expired(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.in_data:  # the data timeout governs a message being sent
            self._arm_deadline()
            return
        assert self.limits is not None
        log.info(
            "smtp %s: no message in %gs, closing",
            peer_address(self.session),
            self.limits.session_timeout,
        )
        reply = SESSION_EXPIRED.format(seconds=self.limits.session_timeout)
        self.transport.write(reply.encode() + b"\r\n")  # type: ignore[attr-defined]
        self.transport.close()

    def _command(
        self, name: str, method: Callable[[str | None], Coroutine[Any, Any, None]]
    ) -> Callable[[str | None], Coroutine[Any, Any, None]]:
        @functools.wraps(method)
        async def run(arg: str | None) -> None:
            limits = self.limits
            if limits is not None:
                self.commands += 1
                if self.commands > limits.max_commands:
                    log.info(
                        "smtp %s: over %d commands", peer_address(self.session), limits.max_commands
                    )
                    await self.push(TOO_MANY_COMMANDS.format(limit=limits.max_commands))
                    if self.transport is not None:
                        self.transport.close()
                    return
            refusal = command_refusal(name, arg)
            if refusal is not None:
                await self.push(refusal)
                return
            envelope = self.envelope
            await method(arg)
            if limits is None or self.transport is None:
                return
            if name == "DATA" and self.envelope is not envelope:  # a message came to its end
                self._arm_deadline()
            if self.slot is not None and self.session is not None and self.session.authenticated:
                self._give_back_slot()

        return run

    def _create_session(self) -> RelaySession:
        return RelaySession(self.loop)

    def _create_envelope(self) -> RelayEnvelope:
        return RelayEnvelope()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd parses every MAIL/RCPT argument with the e-mail header parser (and defines
        # a class on each call); mail systems send the same few addresses over and over.
        return _parse_address_argument(arg)

    async def push(self, status: Any) -> None:
        if isinstance(status, str):  # aiosmtpd echoes arguments: never their control bytes
            status = safe_reply(self._replies.get(status, status))
        await super().push(status)

    async def smtp_DATA(self, arg: str) -> None:
        self._reset_timeout(self.data_timeout)
        self.in_data = True
        try:
            if self.bodies is None:
                await super().smtp_DATA(arg)
            else:
                await spool.smtp_data(self, arg, self.bodies)
        finally:
            self.in_data = False
            if self.transport is not None:
                self._reset_timeout()


def replies(max_size: int) -> dict[str, str]:
    """aiosmtpd's own replies, with enhanced status codes and the limits they refer to."""
    return {
        "500 Line too long (see RFC5321 4.5.3.1.6)": (
            "500 5.5.2 Line too long: at most 998 characters per line (RFC 5321 4.5.3.1.6);"
            " use quoted-printable or base64"
        ),
        "500 Command line too long": "500 5.5.2 Command line too long",
        "552 Error: Too much mail data": f"552 5.3.4 Message too big: limit {max_size} bytes",
        "552 Error: message size exceeds fixed maximum message size": (
            f"552 5.3.4 Message size exceeds the limit of {max_size} bytes"
        ),
        "503 Error: need RCPT command": "503 5.5.1 Error: need RCPT command",
        "503 Error: need MAIL command": "503 5.5.1 Error: need MAIL command",
        "503 Error: nested MAIL command": "503 5.5.1 Error: nested MAIL command",
        "554 Command refused due to lack of security": (
            "554 5.7.0 Command refused due to lack of security"
        ),
        "538 5.7.11 Encryption required for requested authentication mechanism": (
            "538 5.7.11 Encryption required: STARTTLS first, then AUTH"
        ),
        "500 Error: strict ASCII mode": "500 5.6.7 Non-ASCII data without SMTPUTF8",
    }
