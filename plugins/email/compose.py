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
from plugins.email.addresses import parse_mailbox
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
    message: EmailMessage
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


def compose(
    account: EmailAccount, outgoing: Outgoing, now: datetime.datetime | None = None
) -> Composed:
    """Build the message; raise ValueError for a recipient that is not one e-mail address.

    Both text and HTML give multipart/alternative; HTML alone gets a text part stripped from it.
    """
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
    msg["Date"] = email.utils.format_datetime(now or datetime.datetime.now().astimezone())
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
