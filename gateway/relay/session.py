"""aiosmtpd's SMTP protocol with msggate's session state, data timeout and reply texts.

aiosmtpd enforces SIZE, line length and the command timeout itself, but some of its replies
carry no enhanced status code (RFC 3463); ``push`` rewrites those few to the codes clients and
log scanners expect. The command timeout covers the wait for each command; while a message is
being sent (DATA up to the final ".") the longer ``data_timeout`` applies.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.bodies import BodyBudget
from gateway.relay import spool
from gateway.relay.route import Deliver

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


class RelaySMTP(SMTP):
    """The protocol instance for one relay connection."""

    def __init__(
        self,
        *args: Any,
        data_timeout: float,
        replies: dict[str, str],
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

    def connection_lost(self, error: Exception | None) -> None:
        if self._on_lost is not None:
            self._on_lost(self)
        super().connection_lost(error)

    def _create_session(self) -> RelaySession:
        return RelaySession(self.loop)

    def _create_envelope(self) -> RelayEnvelope:
        return RelayEnvelope()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd parses every MAIL/RCPT argument with the e-mail header parser (and defines
        # a class on each call); mail systems send the same few addresses over and over.
        return _parse_address_argument(arg)

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            status = self._replies.get(status, status)
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
