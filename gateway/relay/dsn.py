"""Delivery status notifications (RFC 3464): the bounce a sender gets for a failed delivery.

A ``multipart/report; report-type=delivery-status`` with three parts: a human-readable
explanation, the ``message/delivery-status`` fields, and the headers of the original message
(``text/rfc822-headers``). Built byte by byte: the fields are line-oriented and exact.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import logging
import re
import secrets
from dataclasses import dataclass
from email.header import Header

log = logging.getLogger(__name__)

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE = re.compile(r"^[245]\d\d$")


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed delivery of an SMTP-submitted message."""

    original_recipient: str  # the RCPT TO address the sender used
    channel: str
    recipient: str  # what the channel sent to
    code: str | None
    reason: str
    failed_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Original:
    """What the bounce says about the message it returns."""

    arrival: dt.datetime
    message_id: str | None
    subject: str | None
    from_: str | None
    to: str | None
    date: str | None
    gateway_id: str


def status_code(failure: Failure) -> str:
    """The DSN Status: the provider's enhanced code when it gave one, 4.4.7 after giving up."""
    match = _ENHANCED.search(failure.reason)
    if match and match.group(1) in "45":
        return match.group(0)
    if failure.reason.startswith("gave up after"):
        return "4.4.7"  # temporary failures until the attempts ran out
    return "5.0.0"


def diagnostic(failure: Failure) -> str:
    reason = " ".join(failure.reason.split())[:900]
    if failure.channel == "email" and failure.code and _SMTP_CODE.match(failure.code):
        return f"smtp; {failure.code} {reason}"
    return f"X-msggate; {failure.channel}: {reason}"


def _header(name: str, value: str) -> str:
    return f"{name}: {Header(value, 'utf-8', header_name=name).encode(linesep=chr(13) + chr(10))}"


def _human(failure: Failure, original: Original, reporting_mta: str) -> str:
    what = f'"{original.subject}"' if original.subject else "(no subject)"
    via = "" if failure.channel == "email" else f" (by {failure.channel} to {failure.recipient})"
    return (
        f"This is the mail system at {reporting_mta}.\n\n"
        f"Your message {what} could not be delivered to\n"
        f"<{failure.original_recipient}>{via}:\n\n"
        f"    {' '.join(failure.reason.split())}\n\n"
        f"The delivery was given up; it will not be tried again.\n"
        f"Gateway message id: {original.gateway_id}\n"
    )


def build(
    *,
    failure: Failure,
    original: Original,
    sender: str,
    from_: str,
    reporting_mta: str,
    message_id: str,
) -> tuple[bytes, str, str]:
    """(the DSN as bytes, its subject, its human-readable text) for a bounce to ``sender``."""
    boundary = f"=_msggate_dsn_{secrets.token_hex(12)}"
    subject = f"Undelivered Mail Returned to Sender: {original.subject or '(no subject)'}"
    human = _human(failure, original, reporting_mta)
    crlf = "\r\n"
    head = [
        _header("From", from_),
        f"To: <{sender}>",
        _header("Subject", subject[:900]),
        f"Date: {email.utils.formatdate(localtime=True)}",
        f"Message-ID: {message_id}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
    ]
    per_message = [
        f"Reporting-MTA: dns; {reporting_mta}",
        f"X-Msggate-Message-ID: {original.gateway_id}",
        f"Arrival-Date: {email.utils.format_datetime(original.arrival)}",
    ]
    per_recipient = [
        f"Original-Recipient: rfc822;{failure.original_recipient}",
        f"Final-Recipient: rfc822;{failure.original_recipient}",
        "Action: failed",
        f"Status: {status_code(failure)}",
        f"Diagnostic-Code: {diagnostic(failure)}",
        f"Last-Attempt-Date: {email.utils.format_datetime(failure.failed_at)}",
    ]
    headers = []
    for name, value in (
        ("Message-ID", original.message_id),
        ("Date", original.date),
        ("From", original.from_),
        ("To", original.to),
        ("Subject", original.subject),
    ):
        if value:
            headers.append(_header(name, value) if name != "Message-ID" else f"{name}: {value}")
    body64 = base64.encodebytes(human.encode("utf-8")).decode("ascii").replace("\n", crlf)
    parts = [
        crlf.join(head),
        "",
        "This is a MIME-encapsulated delivery status notification.",
        f"--{boundary}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Description: Notification",
        "Content-Transfer-Encoding: base64",
        "",
        body64.rstrip(crlf),
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "Content-Description: Delivery report",
        "",
        crlf.join(per_message),
        "",
        crlf.join(per_recipient),
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "Content-Description: Undelivered message headers",
        "",
        crlf.join(headers),
        "",
        f"--{boundary}--",
        "",
    ]
    return crlf.join(parts).encode("utf-8"), subject, human
