"""Mail that came in through the SMTP relay: sent on as the client wrote it.

The gateway hands over the original MIME (``outgoing.raw``) with its Received field already on
top; Message-ID, Subject, From, Reply-To and the attachments stay as they are. Only the envelope
is ours: MAIL FROM is the account's address (the one its provider lets it use), RCPT TO the
delivery's recipient.
"""

from __future__ import annotations

import email.parser
import email.policy
import logging
from email.message import EmailMessage

from gateway.channel import Outgoing
from plugins.email.account import EmailAccount
from plugins.email.addresses import parse_mailbox
from plugins.email.compose import Composed, message_id_for

log = logging.getLogger(__name__)

_headers = email.parser.BytesHeaderParser(policy=email.policy.default)


def compose_relayed(account: EmailAccount, outgoing: Outgoing) -> Composed:
    """The original message for one recipient; ValueError for a bad recipient address."""
    assert outgoing.raw is not None
    try:
        recipient = parse_mailbox(outgoing.recipient)
    except ValueError as exc:
        raise ValueError(f"invalid recipient: {exc}") from None
    sender = account.sender
    headers = _headers.parsebytes(outgoing.raw)
    assert isinstance(headers, EmailMessage)
    message_id = None
    for name, value in headers.raw_items():
        if name.lower() == "message-id":
            message_id = " ".join(str(value).split()) or None
            break
    return Composed(
        sender=sender.addr_spec,
        recipient=recipient.addr_spec,
        message_id=message_id or message_id_for(outgoing.delivery_id, sender.domain),
        message=headers,
        data=outgoing.raw,
    )
