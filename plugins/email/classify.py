"""Turning SMTP trouble into an Outcome: RFC 5321 says 4yz is transient, 5yz permanent."""

from __future__ import annotations

import logging

import aiosmtplib

from gateway.channel import Failed, Retry
from plugins.email.session import AUTH_FAILED, SessionFailed

log = logging.getLogger(__name__)

SERVICE_CLOSING = 421


def from_reply(code: int, text: str) -> Retry | Failed:
    """The outcome of a negative server reply."""
    if 500 <= code < 600:
        if code == 535:
            return Failed(reason=f"{AUTH_FAILED}: {text}", code=str(code))
        return Failed(reason=text, code=str(code))
    # 4yz (421 included) and anything unexpected: try again later
    return Retry(reason=text, code=str(code))


def is_connection_error(exc: BaseException) -> bool:
    """True if ``exc`` means the connection itself is gone or unusable (not a refusal)."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code == SERVICE_CLOSING
    return isinstance(exc, OSError)  # disconnects, resets and timeouts


def classify(exc: BaseException) -> Retry | Failed:
    """The outcome for an exception raised while opening a session or sending."""
    if isinstance(exc, SessionFailed):
        code = str(exc.code) if exc.code is not None else None
        if exc.transient:
            return Retry(reason=exc.reason, code=code)
        return Failed(reason=exc.reason, code=code)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return from_reply(exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return Failed(reason=str(exc))
    if isinstance(exc, TimeoutError):
        return Retry(reason=f"SMTP timeout: {str(exc) or type(exc).__name__}")
    if isinstance(exc, OSError):
        return Retry(reason=f"SMTP connection error: {str(exc) or type(exc).__name__}")
    return Retry(reason=f"SMTP error: {exc}")
