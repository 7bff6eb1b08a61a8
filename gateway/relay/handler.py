"""The SMTP commands: who may relay, where each recipient goes, and 250 only once committed.

aiosmtpd calls ``handle_<COMMAND>`` methods by name and silently ignores a misspelt one, so
``check_hooks`` fails the start if a method here looks like a hook but is not one of aiosmtpd's.
"""

from __future__ import annotations

import logging
import secrets
import time

from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.errors import GatewayError
from gateway.relay import actions
from gateway.relay.access import parse_address
from gateway.relay.auth import AuthMechanisms
from gateway.relay.route import Action, Deliver, Unroutable
from gateway.relay.services import RelayServices
from gateway.relay.session import RelayEnvelope, RelaySession, peer_address
from gateway.relay.submit import NoContent, Transaction
from gateway.relay.validate import Refusal, check_header_size
from gateway.store import UNAVAILABLE

log = logging.getLogger(__name__)

# Replies (RFC 5321 codes, RFC 3463 enhanced codes).
OK = "250 2.0.0 Ok"
SENDER_OK = "250 2.1.0 Sender ok"
RECIPIENT_OK = "250 2.1.5 Recipient ok"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
NOT_ALLOWED = "554 5.7.1 Relay access denied: your address {client} is not in the access list"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
TEMPORARY = "451 4.3.0 Temporary failure; please try again later"
MISCONFIGURED = "451 4.3.5 {address}: relay configuration problem; please try again later"
NO_ROUTE = "550 5.1.1 {address}: {reason}"
BAD_RECIPIENT = "550 5.1.3 {address}: {reason}"
NO_CONTENT = "554 5.6.0 Message refused: {reason}"
QUEUED = "250 2.0.0 Ok: queued as {ids}"

AIOSMTPD_HOOKS = frozenset(
    {"HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "AUTH"}
    | {"STARTTLS", "PROXY", "exception"}
)


def check_hooks(handler: object) -> None:
    """Raise if ``handler`` has a ``handle_*`` method aiosmtpd would never call."""
    for name in dir(handler):
        if name.startswith("handle_") and name.removeprefix("handle_") not in AIOSMTPD_HOOKS:
            raise TypeError(f"{type(handler).__name__}.{name} is not an aiosmtpd hook")


class RelayHandler(AuthMechanisms):
    """aiosmtpd handler hooks for the relay."""

    def __init__(self, relay: RelayServices) -> None:
        self.relay = relay
        self.users = relay.users
        self.throttle = relay.throttle
        self.max_recipients = relay.settings.smtp_max_recipients
        check_hooks(self)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.mail_from = address  # "<>" stays: aiosmtpd takes an empty one for no MAIL
        envelope.mail_options.extend(options)
        return SENDER_OK

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        assert isinstance(session, RelaySession) and isinstance(envelope, RelayEnvelope)
        try:
            refusal = await self._may_relay(session)
            if refusal is None and address not in envelope.routes:
                if len(envelope.rcpt_tos) >= self.max_recipients:
                    return TOO_MANY_RECIPIENTS
                refusal = await self._route(envelope, address)
        except UNAVAILABLE as exc:
            log.warning("RCPT %s: database unavailable (%r)", address, exc)
            return TEMPORARY
        if refusal is not None:
            log.info("smtp %s: RCPT %s refused: %s", peer_address(session), address, refusal)
            return refusal
        if address not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(options)
        return RECIPIENT_OK

    async def _may_relay(self, session: RelaySession) -> str | None:
        """None if this client may relay, else the refusal: never an open relay."""
        client = peer_address(session)
        now = time.monotonic()
        if session.verdict is not None and session.verdict[0] > now:
            verdict = session.verdict[1]  # the same client, the list cached just as long
        else:
            verdict = await self.relay.access.check(parse_address(client))
            session.verdict = (now + self.relay.access.cache_seconds, verdict)
        if verdict.refused:
            return NOT_ALLOWED.format(client=client)
        if verdict.inside or session.auth_user:
            return None
        return AUTH_REQUIRED

    async def _route(self, envelope: RelayEnvelope, address: str) -> str | None:
        relay = self.relay
        route = relay.plugins.route_address(
            address, _sender(envelope), relay.settings.relay_domain, relay.table
        )
        if route is None:
            return NO_ROUTE.format(address=address, reason="no route: nothing handles it")
        if isinstance(route, Unroutable):
            return NO_ROUTE.format(address=address, reason=route.reason)
        if isinstance(route, Action):
            return await actions.refusal(relay.actions, route.name, address)
        assert isinstance(route, Deliver)
        channel = relay.plugins.channel(route.channel)
        if channel is None:
            log.error("relay route for %s: channel %r is not loaded", address, route.channel)
            return MISCONFIGURED.format(address=address)
        account = await relay.accounts.get(route.account)
        if account is None or account.channel != route.channel:
            log.error(
                "relay route for %s: no %s account named %r", address, route.channel, route.account
            )
            return MISCONFIGURED.format(address=address)
        problem = channel.check_recipient(route.recipient)
        if problem:
            return BAD_RECIPIENT.format(address=address, reason=problem)
        envelope.routes[address] = route
        return None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(session, RelaySession) and isinstance(envelope, RelayEnvelope)
        raw = envelope.original_content or b""
        try:
            check_header_size(raw)
        except Refusal as exc:
            log.info("smtp from %s refused: %s", peer_address(session), exc.reply)
            return exc.reply
        tx = Transaction(
            smtp_id=secrets.token_hex(6),
            client=peer_address(session),
            helo=session.host_name,
            esmtp=session.extended_smtp,
            tls=_tls(session),
            auth_user=session.auth_user,
            mail_from=_sender(envelope),
            routes={a: envelope.routes[a] for a in envelope.rcpt_tos if a in envelope.routes},
            raw=raw,
            hostname=self.relay.hostname,
        )
        try:
            accepted = await self.relay.submitter.submit(tx)
        except UNAVAILABLE as exc:
            log.warning("smtp %s from %s: database unavailable (%r)", tx.smtp_id, tx.client, exc)
            return TEMPORARY
        except NoContent as exc:
            return NO_CONTENT.format(reason=exc)
        except Refusal as exc:  # what the message holds can never be accepted
            log.info("smtp %s from %s refused: %s", tx.smtp_id, tx.client, exc.reply)
            return exc.reply
        except GatewayError as exc:  # our own validation: its message is meant for callers
            log.info("smtp %s from %s refused: %s", tx.smtp_id, tx.client, exc.message)
            return NO_CONTENT.format(reason=" ".join(exc.message.split())[:200])
        except Exception:
            log.exception("smtp %s from %s: unexpected error", tx.smtp_id, tx.client)
            return TEMPORARY
        ids = " ".join(a.id for a in accepted)
        log.info(
            "smtp %s from %s (%s): %d recipients queued as %s",
            tx.smtp_id,
            tx.client,
            tx.auth_user or "by address",
            len(tx.routes),
            ids,
        )
        return QUEUED.format(ids=ids)

    async def handle_exception(self, error: Exception) -> str:
        # aiosmtpd's default would send the exception's text to the client.
        if type(error).__name__ == "TLSSetupException":
            log.info("relay: TLS handshake failed: %r", error.__cause__ or error)
        else:
            log.error("relay: unexpected error in an SMTP session", exc_info=error)
        return TEMPORARY


def _sender(envelope: Envelope) -> str:
    """The envelope sender; "" for the null sender <>."""
    sender = envelope.mail_from or ""
    return "" if sender == "<>" else sender


def _tls(session: Session) -> str | None:
    extra = session.ssl
    if not extra:
        return None
    ssl_object = extra.get("ssl_object")
    cipher = extra.get("cipher")
    version = ssl_object.version() if ssl_object is not None else None
    name = cipher[0] if isinstance(cipher, tuple) and cipher else None
    return ":".join(p for p in (version, name) if p) or "TLS"
