"""Building the MIME message for one delivery."""

from __future__ import annotations

import datetime
import email.policy
import email.utils
import logging
import re
from dataclasses import dataclass
from email.message import EmailMessage

from gateway.channel import Outgoing
from plugins.email.account import EmailAccount
from plugins.email.addresses import PLAIN_ADDRESS, is_plain_address, parse_mailbox
from plugins.email.html_text import html_to_text

log = logging.getLogger(__name__)

# SMTP line endings, and bodies as quoted-printable/base64 so no server needs 8BITMIME (§8.4);
# headers with non-ASCII text are RFC 2047-encoded by the policy either way.
POLICY = email.policy.SMTP.clone(cte_type="7bit")

_MSGID_UNSAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")


@dataclass(frozen=True, slots=True)
class Composed:
    """A message ready to submit: envelope addresses, Message-ID and the wire bytes."""

    sender: str
    recipient: str
    message_id: str
    message: EmailMessage | None  # None when built by the fast path (only data is sent)
    data: bytes


def message_id_for(delivery_id: str, domain: str) -> str:
    """A Message-ID derived from the delivery, so a retried delivery keeps the same one."""
    local = _MSGID_UNSAFE.sub("", delivery_id).strip(".")
    if not local:
        return email.utils.make_msgid(domain=domain)
    return f"<{local}@{domain}>"


def _one_line(text: str) -> str:
    """Header text on one line: CR/LF would be header injection."""
    return " ".join(text.splitlines()).strip()


# The fast path: what EmailMessage with POLICY writes, byte for byte, for the common case of
# printable-ASCII headers short enough not to fold, a plain address or "Word Word <addr>", and an
# ASCII text body of short lines (7bit). Anything else goes through EmailMessage.
_PLAIN_MAILBOX = re.compile(
    rf"(?:([A-Za-z0-9]+(?: [A-Za-z0-9]+)*) <({PLAIN_ADDRESS})>|({PLAIN_ADDRESS}))"
)
_PLAIN_TEXT = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")  # no folding, no =?
_MAX_HEADER = 78


def _header(name: str, value: str) -> str | None:
    line = f"{name}: {value}\r\n"
    if len(line) - 2 > _MAX_HEADER or "=?" in value or "  " in value:
        return None
    return line


def _fast(account: EmailAccount, outgoing: Outgoing, now: datetime.datetime) -> Composed | None:
    if outgoing.html or not outgoing.text or not outgoing.text.isascii():
        return None
    sender = _PLAIN_MAILBOX.fullmatch(account.from_)
    if sender is None or not is_plain_address(outgoing.recipient):
        return None
    subject = outgoing.subject
    if subject is not None and not _PLAIN_TEXT.fullmatch(subject):
        return None
    lines = outgoing.text.encode("ascii").splitlines()
    if max(len(line) for line in lines) > _MAX_HEADER:
        return None
    name, addr = (sender.group(1), sender.group(2)) if sender.group(2) else (None, sender.group(3))
    domain = addr.rpartition("@")[2]
    message_id = message_id_for(outgoing.delivery_id, domain)
    x_id = outgoing.message_id
    headers = [
        _header("From", f"{name} <{addr}>" if name else addr),
        _header("To", outgoing.recipient),
        _header("Subject", subject) if subject is not None else "",
        _header("Date", email.utils.format_datetime(now)),
        _header("Message-ID", message_id),
        _header("X-Msggate-Message-Id", x_id) if _PLAIN_TEXT.fullmatch(x_id) else None,
    ]
    if None in headers:
        return None
    head = "".join(headers) + (  # type: ignore[arg-type]
        'Content-Type: text/plain; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: 7bit\r\nMIME-Version: 1.0\r\n\r\n"
    )
    data = head.encode("ascii") + b"\r\n".join(lines) + b"\r\n"
    return Composed(
        sender=addr, recipient=outgoing.recipient, message_id=message_id, message=None, data=data
    )


def compose(
    account: EmailAccount, outgoing: Outgoing, now: datetime.datetime | None = None
) -> Composed:
    """Build the message; raise ValueError for a recipient that is not one e-mail address.

    Both text and HTML give multipart/alternative; HTML alone gets a text part stripped from it.
    """
    now = now or datetime.datetime.now().astimezone()
    return _fast(account, outgoing, now) or compose_full(account, outgoing, now)


def compose_full(account: EmailAccount, outgoing: Outgoing, now: datetime.datetime) -> Composed:
    """The general path through ``EmailMessage``; ``_fast`` must match it byte for byte."""
    sender = account.sender
    try:
        recipient = parse_mailbox(outgoing.recipient)
    except ValueError as exc:
        raise ValueError(f"invalid recipient: {exc}") from None
    message_id = message_id_for(outgoing.delivery_id, sender.domain)
    msg = EmailMessage(policy=POLICY)
    msg["From"] = sender
    msg["To"] = recipient
    if outgoing.subject is not None:
        msg["Subject"] = _one_line(outgoing.subject)
    msg["Date"] = email.utils.format_datetime(now)
    msg["Message-ID"] = message_id
    msg["X-Msggate-Message-Id"] = _one_line(outgoing.message_id)
    text, html = outgoing.text, outgoing.html
    if html and not text:
        text = html_to_text(html)
    msg.set_content(text or "")
    if html:
        msg.add_alternative(html, subtype="html")
    return Composed(
        sender=sender.addr_spec,
        recipient=recipient.addr_spec,
        message_id=message_id,
        message=msg,
        data=msg.as_bytes(),
    )
