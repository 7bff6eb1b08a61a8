"""Opening an authenticated SMTP session step by step, each failure with a precise reason.

Used both by the connection pool (sending) and by account validation, so that "cannot connect",
"certificate not trusted", "no STARTTLS" and "wrong password" read the same in both places.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl

import aiosmtplib

from plugins.email.account import EmailAccount

log = logging.getLogger(__name__)

AUTH_FAILED = "SMTP authentication failed (wrong password or authorization code)"


class SessionFailed(Exception):
    """Opening the session failed at one step: a user-facing reason and the config field."""

    def __init__(
        self, reason: str, *, field: str | None, transient: bool, code: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.transient = transient
        self.code = code


def tls_context(account: EmailAccount) -> ssl.SSLContext:
    """The default client context, plus the account's extra CA; no checks if verify_tls is off."""
    context = ssl.create_default_context()
    if account.ca_cert:
        context.load_verify_locations(cadata=account.ca_cert)
    if not account.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


_local_hostname: str | None = None


async def local_hostname() -> str:
    """Our name for EHLO, looked up once (getfqdn can block on DNS, so it runs in a thread)."""
    global _local_hostname
    if _local_hostname is None:
        name = await asyncio.to_thread(socket.getfqdn)
        usable = name.isascii() and name.isprintable() and " " not in name
        _local_hostname = name if name and usable else "localhost"
    return _local_hostname


def _reply(exc: aiosmtplib.SMTPResponseException) -> str:
    return f"{exc.code} {exc.message}"


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    """The SSL error behind ``exc`` (aiosmtplib wraps implicit-TLS failures), if any."""
    while exc is not None:
        if isinstance(exc, ssl.SSLError):
            return exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


def _failure(account: EmailAccount, step: str, exc: Exception) -> SessionFailed:
    """Map an exception raised during ``step`` to a SessionFailed."""
    where = f"{account.host}:{account.port}"
    tls_problem = _tls_error(exc)
    if tls_problem is not None:
        return SessionFailed(
            f"TLS handshake failed / certificate not trusted ({where}): {tls_problem}",
            field="tls",
            transient=True,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        transient = 400 <= exc.code < 500
        if step == "auth":
            reason = (
                f"SMTP authentication temporarily failed: {_reply(exc)}"
                if transient
                else f"{AUTH_FAILED}: {_reply(exc)}"
            )
            return SessionFailed(reason, field="password", transient=transient, code=exc.code)
        return SessionFailed(
            f"server refused the {step} ({where}): {_reply(exc)}",
            field="tls" if step == "STARTTLS" else "host",
            transient=transient,
            code=exc.code,
        )
    if step == "connection" or isinstance(exc, OSError):
        detail = str(exc) or type(exc).__name__
        if step == "connection":
            reason = f"cannot connect to {where}: {detail}"
            return SessionFailed(reason, field="host", transient=True)
        return SessionFailed(
            f"connection to {where} lost during {step}: {detail}", field="host", transient=True
        )
    return SessionFailed(f"{step} failed ({where}): {exc}", field="host", transient=True)


async def open_session(account: EmailAccount) -> aiosmtplib.SMTP:
    """Connect, (START)TLS, EHLO and AUTH as the account says; raise SessionFailed.

    STARTTLS is required when ``tls == "starttls"``: a server that does not offer it is an
    error, never a silent downgrade to cleartext.
    """
    try:
        context = tls_context(account) if account.tls != "none" else None
    except (ssl.SSLError, ValueError) as exc:
        raise SessionFailed(f"invalid ca_cert: {exc}", field="ca_cert", transient=False) from None
    smtp = aiosmtplib.SMTP(
        hostname=account.host,
        port=account.port,
        use_tls=account.tls == "tls",
        start_tls=False,  # done below, so that "not offered" gets its own reason
        tls_context=context,
        timeout=account.timeout,
        local_hostname=await local_hostname(),
    )
    step = "connection"
    try:
        await smtp.connect()
        step = "EHLO"
        await smtp.ehlo()
        if account.tls == "starttls":
            if not smtp.supports_extension("starttls"):
                raise SessionFailed(
                    f"server does not offer STARTTLS ({account.host}:{account.port})",
                    field="tls",
                    transient=False,
                )
            step = "STARTTLS"
            await smtp.starttls()
            step = "EHLO"
            await smtp.ehlo()  # capabilities from before TLS are void (RFC 3207)
        login = account.login
        if login is not None:
            await _authenticate(smtp, account, login)
    except BaseException as exc:
        smtp.close()
        if isinstance(exc, aiosmtplib.SMTPException | OSError):  # OSError covers timeouts, SSL
            raise _failure(account, step, exc) from exc
        raise
    return smtp


async def _authenticate(smtp: aiosmtplib.SMTP, account: EmailAccount, login: str) -> None:
    """AUTH PLAIN (preferred) or LOGIN, once: no retries that could trip a lockout."""
    methods = smtp.server_auth_methods
    if "plain" in methods:
        method = smtp.auth_plain
    elif "login" in methods:
        method = smtp.auth_login
    else:
        offered = " ".join(methods).upper() or "none"
        raise SessionFailed(
            f"server does not offer AUTH PLAIN or LOGIN (offered: {offered})",
            field="username",
            transient=False,
        )
    try:
        await method(login, account.password or "")
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise _failure(account, "auth", exc) from exc
