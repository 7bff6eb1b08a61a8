"""One mail transaction (MAIL, RCPT, DATA) on a pooled session, classified into an Outcome."""

from __future__ import annotations

import logging
import re

import aiosmtplib

from gateway.channel import Failed, Outcome, Sent
from plugins.email.classify import classify, is_connection_error
from plugins.email.compose import Composed
from plugins.email.pool import Lease, SmtpPool
from plugins.email.session import SessionFailed

log = logging.getLogger(__name__)

# Postfix/QQ/163 "Ok: queued as 4BxYz", Exim "OK id=1rAbCd-000123-Xy"
_QUEUE_ID = re.compile(r"queued as\s+<?([\w.@-]+)>?|\bid=([\w.@-]+)", re.IGNORECASE)


class _BrokenBeforeData(Exception):
    """The session broke before DATA: nothing can have been delivered, so a resend is safe."""


def queue_id(reply: str) -> str | None:
    """The server's queue id in its reply to DATA, if it gives one."""
    match = _QUEUE_ID.search(reply)
    return (match.group(1) or match.group(2)) if match else None


async def _reset(smtp: aiosmtplib.SMTP) -> bool:
    """RSET after a refused transaction; True if the session is still good for reuse."""
    if not smtp.is_connected:
        return False
    try:
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError):
        return False
    return True


def _too_big(smtp: aiosmtplib.SMTP, size: int) -> Failed | None:
    """A 552 before sending anything, when the server's advertised SIZE is exceeded (RFC 1870)."""
    limit = smtp.esmtp_extensions.get("size", "").strip()
    if limit.isdigit() and 0 < int(limit) < size:
        return Failed(
            reason=f"message of {size} bytes exceeds the server's size limit of {limit} bytes",
            code="552",
        )
    return None


async def _transact(lease: Lease, mail: Composed) -> Outcome:
    smtp = lease.smtp
    size = len(mail.data)
    if too_big := _too_big(smtp, size):
        lease.keep = True
        return too_big
    options = [f"SIZE={size}"] if smtp.supports_extension("size") else []
    if not mail.data.isascii() and smtp.supports_extension("8bitmime"):
        options.append("BODY=8BITMIME")  # relayed mail may carry 8-bit text as it came
    try:
        await smtp.mail(mail.sender, options=options)
        await smtp.rcpt(mail.recipient)
    except (aiosmtplib.SMTPException, OSError) as exc:
        if is_connection_error(exc):
            raise _BrokenBeforeData(str(exc)) from exc
        lease.keep = await _reset(smtp)
        return classify(exc)
    try:
        reply = await smtp.data(mail.data)
    except (aiosmtplib.SMTPException, OSError) as exc:
        # A timeout or disconnect after the final "." may hide a delivered message. Retry all
        # the same: a rare duplicate e-mail is acceptable, a lost one is not.
        lease.keep = isinstance(exc, aiosmtplib.SMTPResponseException) and await _reset(smtp)
        return classify(exc)
    lease.keep = True
    return Sent(
        provider_id=queue_id(reply.message) or mail.message_id,
        units=1,
        answer=f"{reply.code} {reply.message}",
    )


async def _attempt(pool: SmtpPool, mail: Composed, fresh: bool = False) -> Outcome:
    try:
        async with pool.lease(fresh=fresh) as lease:
            return await _transact(lease, mail)
    except SessionFailed as exc:
        return classify(exc)


async def deliver(pool: SmtpPool, mail: Composed) -> Outcome:
    """Send ``mail`` on a pooled session; a session that broke before DATA is replaced once."""
    try:
        return await _attempt(pool, mail)
    except _BrokenBeforeData as exc:
        log.info("smtp %s: session broke before DATA (%s), resending on a new one", pool.label, exc)
    try:
        return await _attempt(pool, mail, fresh=True)
    except _BrokenBeforeData as exc:
        return classify(exc.__cause__ or exc)
