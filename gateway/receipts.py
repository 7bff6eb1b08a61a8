"""Provider receipts: "delivered" or "undelivered" after "sent", with the provider's reason."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from gateway.events import DeliveryEvent
from gateway.model import Receipt
from gateway.plugins import Plugins
from gateway.store import Store

log = logging.getLogger(__name__)


class Receipts:
    """Applies receipts that callback routes (or polling plugins) receive."""

    def __init__(self, store: Store, plugins: Plugins) -> None:
        self.store = store
        self.plugins = plugins

    async def record(self, channel: str, receipts: Sequence[Receipt]) -> int:
        """Update the deliveries the receipts name; return how many matched."""
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
