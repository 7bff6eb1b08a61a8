"""Proving an account works without sending mail (spec §8.3): connect, TLS, AUTH, MAIL, RSET."""

from __future__ import annotations

import logging

import aiosmtplib

from gateway.channel import AccountInvalid
from plugins.email.account import EmailAccount
from plugins.email.pool import quit_quietly
from plugins.email.session import SessionFailed, open_session

log = logging.getLogger(__name__)

AUTH_REQUIRED = 530


async def validate(account: EmailAccount) -> None:
    """Raise AccountInvalid with a user-facing reason; never sends RCPT or DATA."""
    try:
        smtp = await open_session(account)
    except SessionFailed as exc:
        raise AccountInvalid(exc.reason, field=exc.field) from None
    try:
        # Some providers refuse a sender the login may not use; MAIL FROM proves it, RSET undoes it
        await smtp.mail(account.sender.addr_spec)
        await smtp.rset()
    except aiosmtplib.SMTPResponseException as exc:
        reply = f"{exc.code} {exc.message}"
        if exc.code == AUTH_REQUIRED:
            raise AccountInvalid(f"server requires authentication: {reply}", "username") from None
        if 400 <= exc.code < 500:
            raise AccountInvalid(f"server busy, try again later: {reply}") from None
        raise AccountInvalid(f"sender address refused: {reply}", field="from") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        where = f"{account.host}:{account.port}"
        raise AccountInvalid(f"connection to {where} lost: {exc}", field="host") from None
    finally:
        await quit_quietly(smtp)
