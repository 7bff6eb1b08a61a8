"""SMTP AUTH PLAIN and LOGIN as asynchronous handler methods, checked against relay users.

aiosmtpd's ``authenticator`` callback is synchronous, so a password hash checked there would
stall every session on the loop. aiosmtpd also takes ``auth_<MECHANISM>`` coroutines from the
handler (they replace its built-in ones); these parse the exchange the same way, then verify in
a worker thread (see ``gateway.relay.users``). Each attempt is counted by ``gateway.throttle``
before the password is checked (per user from this address, per address, per user): over a
budget it is answered 454 unchecked, a failure is answered 535 after a growing delay, and a
session that fails ``SESSION_FAILURES`` times is closed.
"""

from __future__ import annotations

import base64
import binascii
import logging

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from gateway.passwords import PasswordsBusy
from gateway.relay.session import RelaySession, peer_address
from gateway.relay.users import RelayUsers
from gateway.store import UNAVAILABLE
from gateway.throttle import Throttle, TooManyAttempts

log = logging.getLogger(__name__)

SESSION_FAILURES = 3
BUSY = "454 4.7.0 Too many authentication attempts in progress; try again in a few seconds"
UNAVAILABLE_REPLY = "454 4.7.0 Temporary authentication failure; try again later"
CLOSING = "421 4.7.0 Too many failed authentication attempts; closing connection"
BAD_BASE64 = "501 5.5.2 Cannot decode base64"
BAD_PLAIN = "501 5.5.2 Cannot split the PLAIN credentials"

_HANDLED = AuthResult(success=False, handled=True)


def _b64(text: str) -> bytes | None:
    if text == "=":  # RFC 4954: an empty initial response
        return b""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


class AuthMechanisms:
    """Mixed into the relay handler: aiosmtpd finds ``auth_PLAIN`` and ``auth_LOGIN`` on it."""

    users: RelayUsers
    throttle: Throttle

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return _HANDLED
        else:
            blob = _b64(args[1])
            if blob is None:
                await server.push(BAD_BASE64)
                return _HANDLED
        assert isinstance(blob, bytes)
        parts = blob.split(b"\x00")
        if len(parts) != 3:  # authzid NUL authcid NUL passwd (RFC 4616)
            await server.push(BAD_PLAIN)
            return _HANDLED
        return await self._verify(server, parts[1], parts[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await server.challenge_auth("Username:")
        else:
            login = _b64(args[1])
            if login is None:
                await server.push(BAD_BASE64)
                return _HANDLED
        if login is MISSING:
            return _HANDLED
        password = await server.challenge_auth("Password:")
        if password is MISSING:
            return _HANDLED
        assert isinstance(login, bytes) and isinstance(password, bytes)
        return await self._verify(server, login, password)

    async def _verify(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        session = server.session
        assert isinstance(session, RelaySession)
        address = peer_address(session)
        try:
            user, secret = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:  # counted and answered like a wrong password
            user, secret = login.decode("utf-8", "replace"), None
        try:
            async with self.throttle.attempt(user, address) as attempt:
                ok = bool(user) and secret is not None and await self.users.verify(user, secret)
                if ok:
                    await attempt.succeeded()
                else:
                    log.warning("relay AUTH failed: user %r from %s", user[:100], address)
                    await attempt.failed()  # waits the growing delay
        except TooManyAttempts as exc:
            return await self._failed(server, f"454 4.7.0 {exc.message.capitalize()}")
        except PasswordsBusy:  # not the client's failure: nothing counted
            await server.push(BUSY)
            return _HANDLED
        except UNAVAILABLE as exc:
            log.warning("relay AUTH from %s: database unavailable (%r)", address, exc)
            await server.push(UNAVAILABLE_REPLY)
            return _HANDLED
        if ok:
            log.info("relay AUTH: %r from %s", user, address)
            return AuthResult(success=True, auth_data=user)
        return await self._failed(server, None)

    async def _failed(self, server: SMTP, reply: str | None) -> AuthResult:
        """Answer a failed or refused AUTH (``reply`` None: aiosmtpd's 535 5.7.8); close the
        session at its ``SESSION_FAILURES``-th."""
        session = server.session
        assert isinstance(session, RelaySession)
        session.auth_failures += 1
        if session.auth_failures >= SESSION_FAILURES:
            await server.push(CLOSING)
            if server.transport is not None:
                server.transport.close()
            return _HANDLED
        if reply is None:
            return AuthResult(success=False, handled=False)
        await server.push(reply)
        return _HANDLED
