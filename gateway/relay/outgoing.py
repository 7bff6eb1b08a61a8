"""Giving the e-mail channel the original MIME of relayed mail (``Outgoing.raw``).

Plugged into the dispatcher's ``prepare_outgoing`` seam. Only e-mail deliveries are looked up,
and concurrent look-ups share one query (the same batching as the group commit), so mail that
came in over HTTP pays one indexed probe per batch of sends, not per send.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

import msgspec

from gateway.batching import Batcher
from gateway.channel import Outgoing
from gateway.model import ClaimedDelivery
from gateway.relay.store import RelayStore

log = logging.getLogger(__name__)

RAW_CHANNEL = "email"


class RawLoader:
    """``await loader(delivery, outgoing)``: the outgoing, with ``raw`` if its message has one."""

    def __init__(self, store: RelayStore, max_batch: int = 200) -> None:
        self.store = store
        self._batcher: Batcher[uuid.UUID, bytes | None] = Batcher(self._load, max_batch)

    async def _load(self, message_ids: Sequence[uuid.UUID]) -> list[bytes | None]:
        found = await self.store.raw_many(message_ids)
        return [found.get(m) for m in message_ids]

    async def __call__(self, delivery: ClaimedDelivery, outgoing: Outgoing) -> Outgoing:
        if delivery.channel != RAW_CHANNEL or outgoing.raw is not None:
            return outgoing
        raw = await self._batcher.submit(delivery.message_id)
        return outgoing if raw is None else msgspec.structs.replace(outgoing, raw=raw)

    async def close(self) -> None:
        await self._batcher.close()
