"""Bounces: a DSN to the envelope sender when a delivery of relayed mail fails for good.

Two paths lead here, both idempotent (the bounce's idempotency key is its delivery's id):

- live: an observer of the ``msggate_delivery_event`` hook (registered per gateway, since it
  needs that gateway's services) schedules a bounce for every ``failed`` event and every
  ``undelivered`` receipt, just after the dispatcher committed it;
- sweep: every ``SWEEP_SECONDS`` the node looks for recent failures without a bounce, which is
  what catches a node that died between committing a failure and bouncing it.

The bounce is an ordinary message (ingress ``relay-bounce``) through the e-mail channel and the
relay's default account, carrying the DSN as its original MIME. A failed bounce never bounces,
and nothing bounces to the null sender ``<>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import uuid

from gateway import hookimpl
from gateway.config import Settings
from gateway.errors import Conflict, GatewayError
from gateway.events import DeliveryEvent
from gateway.messages import Ingress, MessageIn, MessageService
from gateway.relay import dsn
from gateway.relay.store import BounceFacts, RelayStore
from gateway.store import UNAVAILABLE, Store

log = logging.getLogger(__name__)

SCOPE = "relay-bounce"
SWEEP_SECONDS = 60.0
SWEEP_WINDOW = 2 * 86400.0  # how far back the sweep looks
SWEEP_GRACE = 30.0  # leave the newest failures to the live path
SWEEP_BATCH = 100


class Bounces:
    """Sends DSNs for failed deliveries of SMTP-submitted messages."""

    def __init__(
        self,
        settings: Settings,
        hostname: str,
        relay_store: RelayStore,
        store: Store,
        messages: MessageService,
    ) -> None:
        self.settings = settings
        self.hostname = hostname
        self.relay_store = relay_store
        self.store = store
        self.messages = messages
        self._tasks: set[asyncio.Task] = set()
        self._sweeper: asyncio.Task | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.relay_bounces and bool(self.settings.relay_default_account)

    # -- the observer ----------------------------------------------------------------------

    @hookimpl
    def msggate_delivery_event(self, event: DeliveryEvent) -> None:
        """A failure (or an undelivered receipt) may need a bounce: do it off the hook."""
        final = event.kind == "failed" or (
            event.kind == "receipt" and event.detail.get("status") == "undelivered"
        )
        if final and self.settings.relay_bounces:
            self._spawn(self.bounce(uuid.UUID(event.delivery_id)))

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one bounce ------------------------------------------------------------------------

    async def bounce(self, delivery_id: uuid.UUID) -> str | None:
        """Send the DSN for ``delivery_id`` if it needs one; return the bounce's message id."""
        try:
            facts = await self.relay_store.bounce_facts(delivery_id)
            if facts is None:
                return None  # not relayed mail, or not failed
            sender = str(facts.ingress_detail.get("mail_from") or "")
            if not sender:
                return None  # never bounce to the null sender <>
            if not self.enabled:
                log.warning(
                    "delivery %s failed; no bounce to %s: MSGGATE_RELAY_DEFAULT_ACCOUNT is unset",
                    delivery_id,
                    sender,
                )
                return None
            return await self._send(facts, sender)
        except UNAVAILABLE as exc:
            log.warning("bounce for %s postponed (database: %r)", delivery_id, exc)
        except Exception:
            log.exception("bounce for delivery %s failed", delivery_id)
        return None

    async def _from_address(self) -> str:
        account = self.settings.relay_default_account or ""
        row = await self.store.account_by_name(account)
        _, address = email.utils.parseaddr(str(row.config.get("from", "")) if row else "")
        if "@" not in address:
            address = f"MAILER-DAEMON@{self.settings.relay_domain or self.hostname}"
        return f"Mail Delivery System <{address}>"

    async def _send(self, facts: BounceFacts, sender: str) -> str | None:
        detail = facts.ingress_detail
        rcpt = dict(detail.get("rcpt_to") or {}).get(facts.recipient, facts.recipient)
        failure = dsn.Failure(
            original_recipient=rcpt,
            channel=facts.channel,
            recipient=facts.recipient,
            code=facts.last_code,
            reason=facts.last_error or facts.status,
            failed_at=facts.updated_at,
        )
        original = dsn.Original(
            arrival=facts.created_at,
            message_id=detail.get("message_id"),
            subject=facts.subject,
            from_=detail.get("from"),
            to=detail.get("to"),
            date=detail.get("date"),
            gateway_id=str(facts.message_id),
        )
        domain = self.settings.relay_domain or self.hostname
        raw, subject, text = dsn.build(
            failure=failure,
            original=original,
            sender=sender,
            from_=await self._from_address(),
            reporting_mta=self.hostname,
            message_id=f"<bounce.{facts.delivery_id}@{domain}>",
        )
        message = MessageIn(
            channel="email",
            account=self.settings.relay_default_account or "",
            recipients=[sender],
            subject=subject[:998],
            text=text,
            idempotency_key=f"bounce:{facts.delivery_id}",
        )
        ingress = Ingress(
            SCOPE,
            {"bounce_for": str(facts.message_id), "delivery_id": str(facts.delivery_id)},
            SCOPE,
            raw=raw,
        )
        try:
            accepted = await self.messages.accept(message, ingress)
        except Conflict:
            return None  # a bounce for this delivery exists already
        except GatewayError as exc:
            log.warning("no bounce for delivery %s to %s: %s", facts.delivery_id, sender, exc)
            return None
        if not accepted.replayed:
            log.info("bounce %s to %s for delivery %s", accepted.id, sender, facts.delivery_id)
        return accepted.id

    # -- the sweep -------------------------------------------------------------------------

    def start(self) -> None:
        if self.enabled and self._sweeper is None:  # without an account only the live path warns
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def sweep(self) -> int:
        """Bounce recent failures that have none yet; return how many were looked at."""
        ids = await self.relay_store.bounces_missing(SWEEP_WINDOW, SWEEP_GRACE, SWEEP_BATCH)
        for delivery_id in ids:
            await self.bounce(delivery_id)
        return len(ids)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except UNAVAILABLE as exc:
                log.warning("bounce sweep skipped (database: %r)", exc)
            except Exception:
                log.exception("bounce sweep failed")

    async def close(self) -> None:
        tasks = list(self._tasks)
        if self._sweeper is not None:
            tasks.append(self._sweeper)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
