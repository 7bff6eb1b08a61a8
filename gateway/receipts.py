"""Provider receipts: "delivered" or "undelivered" after "sent", with the provider's reason."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiohttp import web

from gateway.accounts import Accounts
from gateway.channel import AccountRef
from gateway.events import DeliveryEvent
from gateway.model import Receipt
from gateway.plugins import Plugins
from gateway.relay.access import Address, Network, client_address
from gateway.storable import find_unstorable, text_problem
from gateway.store import Store

log = logging.getLogger(__name__)


class Receipts:
    """Applies receipts that callback routes (or polling plugins) receive.

    A callback route's handler gets this service (``handler(request, receipts)``): it looks up
    the account a push arrived for with :meth:`account`, checks the caller against it, and
    hands the receipts to :meth:`record`.
    """

    def __init__(
        self,
        store: Store,
        plugins: Plugins,
        accounts: Accounts,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self.store = store
        self.plugins = plugins
        self.accounts = accounts
        self.trusted_proxies = tuple(trusted_proxies)

    def caller(self, request: web.Request) -> Address | None:
        """The address a push came from, for checking it against an account's allowed
        addresses: ``X-Forwarded-For`` counts only from a proxy in MSGGATE_TRUSTED_PROXIES."""
        forwarded = request.headers.getall("X-Forwarded-For", [])
        return client_address(request.remote, forwarded, self.trusted_proxies)

    async def account(self, name: str) -> AccountRef | None:
        """The account named ``name`` as its channel sees it, or None if there is none.

        For checking a push against the account's own settings (a receipt token, the addresses
        pushes may come from) before recording anything. ``config`` is an instance of the
        channel's ``account_type`` with secrets in clear, so ``isinstance(ref.config,
        MyAccount)`` also tells a handler that the account is one of its channel's; it is None
        for a sandbox account (which sends nothing, so gets no receipts) and for an account
        whose channel is not loaded.
        """
        if text_problem(name) is not None:
            return None  # no account has such a name; asking the database would only fail
        row = await self.store.account_by_name(name)
        if row is None:
            return None
        resolved = await self.accounts.resolve(row.id, row.revision)
        return resolved[1] if resolved is not None else None

    async def record(self, channel: str, receipts: Sequence[Receipt]) -> int:
        """Update the deliveries the receipts name; return how many matched.

        A receipt with an ``account`` settles only a delivery of a message sent through that
        account: set it to the account the push was verified for. A receipt the database
        cannot store (see :func:`unstorable`) is left out with a warning, never failing the
        others; a route that answers per item checks with :func:`unstorable` first.
        """
        storable = [r for r in receipts if unstorable(r) is None]
        if len(storable) < len(receipts):
            log.warning(
                "%s: %d of %d receipts left out: text the database cannot store",
                channel,
                len(receipts) - len(storable),
                len(receipts),
            )
        receipts = storable
        if not receipts:
            return 0
        events = await self.store.record_receipts(channel, receipts)
        for e in events:
            self.plugins.delivery_event(
                DeliveryEvent(str(e.delivery_id), str(e.message_id), e.kind, e.at, e.detail)
            )
        if len(events) < len(receipts):
            log.info(
                "%s: %d of %d receipts matched no delivery",
                channel,
                len(receipts) - len(events),
                len(receipts),
            )
        return len(events)


def unstorable(receipt: Receipt) -> str | None:
    """Why the database cannot store ``receipt`` (a NUL, broken Unicode, absurd nesting in its
    detail), naming the field; None if it can."""
    found = find_unstorable(receipt)
    return None if found is None else f"{found[0] or 'the receipt'} {found[1]}"
