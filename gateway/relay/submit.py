"""One SMTP transaction into the gateway: MIME to messages, through ``MessageService.accept``.

The routed recipients are grouped by channel and account; each group becomes one message with
one delivery per recipient, accepted through the same group commit as the HTTP API, so the
caller answers 250 only once every group is committed. E-mail groups carry the original MIME
(with a Received field) for the e-mail channel to send as is; other channels get the subject and
the text (HTML reduced to text) and a note of the attachments they cannot carry.

When the client gave a Message-ID, each group's idempotency key is derived from it: a client
that retries after a lost 250 (or after a 451 that followed a partial commit) does not create a
second copy. The reply waits for the commit at most ``accept_timeout_seconds``; past that the
client gets 451 and keeps the message, though the commit may still land: its retry is a replay.
A message without a Message-ID gets one of the gateway's own per try, so that rare retry is a
second copy: delivery is at least once.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
from dataclasses import asdict, dataclass
from typing import Any

from gateway.channel import ContentKind
from gateway.errors import Conflict
from gateway.html_text import html_to_text
from gateway.messages import Accepted, Ingress, MessageIn, MessageService
from gateway.plugins import Plugins
from gateway.relay import mime, rawmail
from gateway.relay.route import Deliver
from gateway.relay.validate import BAD_CONTENT, Refusal, check_body, check_headers, storable
from gateway.storable import unstorable

log = logging.getLogger(__name__)

SCOPE = "smtp"
EMAIL = "email"
MAX_SUBJECT = 998
MAX_TEXT = 1_000_000
MAX_HTML = 5_000_000
PARSE_IN_THREAD = 256 * 1024  # bytes: bigger messages are parsed off the event loop


class NoContent(Exception):
    """The message has nothing a text channel could send (no subject, no text)."""


@dataclass(frozen=True, slots=True)
class Transaction:
    """One mail transaction as the SMTP session saw it."""

    smtp_id: str
    client: str
    helo: str | None
    esmtp: bool
    tls: str | None  # protocol and cipher, if STARTTLS was used
    auth_user: str | None
    mail_from: str  # "" for the null sender <>
    routes: dict[str, Deliver]  # RCPT address -> where it goes, in RCPT order
    raw: bytes
    hostname: str


def protocol(tx: Transaction) -> str:
    """RFC 3848 protocol name for the Received field."""
    if not tx.esmtp:
        return "SMTP"
    return "ESMTP" + ("S" if tx.tls else "") + ("A" if tx.auth_user else "")


def _group(routes: dict[str, Deliver]) -> dict[tuple, list[tuple[str, Deliver]]]:
    groups: dict[tuple, list[tuple[str, Deliver]]] = {}
    for rcpt, route in routes.items():
        key = (route.channel, route.account, route.template, repr(sorted(route.options.items())))
        groups.setdefault(key, []).append((rcpt, route))
    return groups


def _key(message_id: str | None, message: MessageIn) -> str | None:
    if not message_id:
        return None
    parts = [message_id, message.channel, message.account, message.template or ""]
    parts += message.recipients
    return "mid:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]


class Submitter:
    """Turns transactions into committed messages."""

    def __init__(self, messages: MessageService, plugins: Plugins) -> None:
        self.messages = messages
        self.plugins = plugins

    async def _content(self, raw: bytes, smtp_id: str) -> mime.Content:
        """The decoded message; Refusal (554) if it cannot be read or its headers stored."""
        try:
            if len(raw) > PARSE_IN_THREAD or mime.count_parts(raw) > mime.MANY_PARTS:
                content = await asyncio.to_thread(mime.parse, raw)
            else:
                content = mime.parse(raw)
        except mime.Unreadable as exc:
            raise Refusal(BAD_CONTENT.format(reason=exc)) from None
        except Exception:
            # The same bytes fail the same way on every retry: a 451 would have the client
            # retry for days. Refuse it for good, and log it, since it may be our bug.
            log.exception("smtp %s: the MIME parser failed", smtp_id)
            raise Refusal(BAD_CONTENT.format(reason="its MIME structure cannot be read")) from None
        check_headers(
            {
                "Subject": content.subject,
                "From": content.from_,
                "To": content.to,
                "Message-ID": content.message_id,
                "Date": content.date,
            }
        )
        return content

    def _stored_raw(self, tx: Transaction, content: mime.Content, message_id: str) -> bytes:
        received = rawmail.received_field(
            helo=tx.helo,
            client=tx.client,
            hostname=tx.hostname,
            protocol=protocol(tx),
            smtp_id=tx.smtp_id,
            tls=tx.tls,
            envelope_from=tx.mail_from,
        )
        return rawmail.prepare(
            tx.raw,
            received,
            message_id=None if content.message_id else message_id,
            date=content.date is None,
        )

    def _message(
        self, content: mime.Content, group: list[tuple[str, Deliver]], message_id: str | None
    ) -> MessageIn:
        first = group[0][1]
        channel = self.plugins.channel(first.channel)
        rich = channel is not None and ContentKind.RICH in channel.content_kinds
        subject = content.subject[:MAX_SUBJECT] if content.subject else None
        text = content.text or (html_to_text(content.html) if content.html else None)
        html = content.html if rich and content.html else None
        if first.channel == EMAIL:
            if not (text or html):  # e.g. a report mailer sending only an attachment
                names = ", ".join(a.filename or a.content_type for a in content.attachments)
                text = f"({names or 'empty message'})"
        elif not text:
            text = subject
        if not (text or html):
            raise NoContent(f"no subject or text to send by {first.channel}")
        if first.channel == EMAIL:  # the MIME goes on as sent; the text is a record of it
            text, html = storable(text), storable(html)
        else:
            check_body(first.channel, text=text, html=html)
        message = MessageIn(
            channel=first.channel,
            account=first.account,
            recipients=list(dict.fromkeys(route.recipient for _, route in group)),
            subject=subject,
            text=text[:MAX_TEXT] if text else None,
            html=html[:MAX_HTML] if html else None,
            variables={"subject": subject or "", "body": text or ""} if first.template else {},
            template=first.template,
            options=dict(first.options),
        )
        message.idempotency_key = _key(message_id, message)
        return message

    def _detail(self, tx: Transaction, content: mime.Content, message_id: str) -> dict[str, Any]:
        return {
            "smtp_id": tx.smtp_id,
            "client": tx.client,
            "helo": tx.helo,
            "tls": tx.tls,
            "auth_user": tx.auth_user,
            "mail_from": tx.mail_from,
            "message_id": message_id,
            "message_id_added": content.message_id is None,
            "from": content.from_,
            "to": content.to,
            "date": content.date,
            "size": len(tx.raw),
            "attachments": len(content.attachments),
        }

    async def submit(self, tx: Transaction) -> list[Accepted]:
        """Accept the transaction's messages; return them once all are committed.

        Raises NoContent, Refusal, the gateway's own Invalid (a 5xx for the client), or database
        errors and TimeoutError past the accept deadline (a 451: nothing is lost, the client keeps
        the message and retries).
        """
        content = await self._content(tx.raw, tx.smtp_id)
        message_id = content.message_id or email.utils.make_msgid(domain=tx.hostname)
        base = self._detail(tx, content, message_id)
        stored_raw: bytes | None = None
        accepts = []
        for group in _group(tx.routes).values():
            message = self._message(content, group, content.message_id)
            detail = {**base, "rcpt_to": {route.recipient: rcpt for rcpt, route in group}}
            raw = None
            if message.channel == EMAIL:
                stored_raw = stored_raw or self._stored_raw(tx, content, message_id)
                raw = stored_raw
            elif content.attachments:
                detail["dropped_attachments"] = [
                    {k: storable(v) if isinstance(v, str) else v for k, v in asdict(a).items()}
                    for a in content.attachments
                ]
            accepts.append((message, Ingress(SCOPE, detail, SCOPE, raw=raw)))
        async with self.messages.deadline():  # one deadline for all groups, not one each
            if len(accepts) > 1:  # refuse before any group commits, not after some did
                for message, ingress in accepts:
                    problem = unstorable(await self.messages.prepare(message, ingress))
                    if problem is not None:
                        raise problem
            if len(accepts) == 1:  # the common case, without a task per group
                return [await self._accept(*accepts[0])]
            # concurrently, so that the groups usually share one group commit
            return list(await asyncio.gather(*(self._accept(m, i) for m, i in accepts)))

    async def _accept(self, message: MessageIn, ingress: Ingress) -> Accepted:
        try:
            return await self.messages.accept(message, ingress)
        except Conflict:
            # The same Message-ID with other content: a client that reuses Message-IDs. Not a
            # retry, so not a duplicate: accept it as a message of its own.
            log.info("smtp %s: Message-ID reused for other content", ingress.detail["smtp_id"])
            message.idempotency_key = None
            return await self.messages.accept(message, ingress)
