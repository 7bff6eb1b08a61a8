"""Everything the relay needs, built once per gateway: ``services.relay``.

``open_relay`` wires the parts into the gateway's services: the access list (also used by the
HTTP API), relay users, the routing table, the submitter, the dispatcher's original-MIME seam
and the bounce observer. The SMTP listener itself is started by ``gateway.relay.listener``,
only by a serving gateway.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.bodies import BodyBudget
from gateway.config import Settings
from gateway.dispatcher import Dispatcher
from gateway.messages import MessageService
from gateway.model import AccountRow
from gateway.plugins import Plugins
from gateway.relay.access import AccessList, parse_networks
from gateway.relay.actions import ActionTrigger
from gateway.relay.bounces import Bounces
from gateway.relay.outgoing import RawLoader
from gateway.relay.route import RoutingTable
from gateway.relay.store import Network, RelayStore
from gateway.relay.submit import Submitter
from gateway.relay.table import load_table
from gateway.relay.users import RelayUsers
from gateway.store import Store
from gateway.throttle import Limits, Throttle

if TYPE_CHECKING:
    from gateway.relay.listener import RelayListener

log = logging.getLogger(__name__)

ACCOUNT_CACHE_SECONDS = 5.0

_fqdn: str | None = None


async def local_hostname(settings: Settings) -> str:
    """``MSGGATE_SMTP_HOSTNAME``, else this machine's FQDN (looked up once, off the loop)."""
    global _fqdn
    if settings.smtp_hostname:
        return settings.smtp_hostname
    if _fqdn is None:
        name = await asyncio.to_thread(socket.getfqdn)
        ok = name and name.isascii() and name.isprintable() and " " not in name
        _fqdn = name if ok else "localhost"
    return _fqdn


class Accounts:
    """Sender accounts by name, cached briefly: RCPT checks that a route's account exists."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, AccountRow | None]] = {}

    async def get(self, name: str) -> AccountRow | None:
        now = time.monotonic()
        hit = self._cache.get(name)
        if hit is None or hit[0] < now:
            if len(self._cache) > 1000:
                self._cache.clear()
            hit = (now + ACCOUNT_CACHE_SECONDS, await self.store.account_by_name(name))
            self._cache[name] = hit
        return hit[1]


@dataclass
class RelayServices:
    """The relay's parts; ``actions`` is the tiered-actions seam (None until that exists)."""

    settings: Settings
    hostname: str
    store: RelayStore
    plugins: Plugins
    access: AccessList
    users: RelayUsers
    throttle: Throttle  # SMTP AUTH guessing, shared with other nodes through the database
    table: RoutingTable
    accounts: Accounts
    submitter: Submitter
    bounces: Bounces
    trusted_proxies: tuple[Network, ...]
    bodies: BodyBudget  # memory for large messages, shared with the API
    raw_loader: RawLoader | None = None
    actions: ActionTrigger | None = None
    listener: RelayListener | None = None  # once serving (gateway.relay.listener)
    observer: str = field(default="", repr=False)

    async def close(self) -> None:
        if self.observer:
            self.plugins.unregister(self.observer)
        await self.bounces.close()
        if self.raw_loader is not None:
            await self.raw_loader.close()


async def open_relay(
    settings: Settings,
    store: Store,
    plugins: Plugins,
    messages: MessageService,
    dispatcher: Dispatcher | None,
    bodies: BodyBudget | None = None,
) -> RelayServices:
    """Build the relay's services; with a dispatcher, also its seam and the bounce observer."""
    relay_store = RelayStore(store.pool)
    hostname = await local_hostname(settings)
    table = load_table(settings)
    for sub, route in table.routes.items():
        if plugins.channel(route.channel) is None:
            log.warning(
                "relay routing table: %s routes to channel %r, which is not loaded",
                sub,
                route.channel,
            )
    relay = RelayServices(
        settings=settings,
        hostname=hostname,
        store=relay_store,
        plugins=plugins,
        access=AccessList(relay_store),
        users=RelayUsers(relay_store),
        throttle=Throttle(store, "smtp", Limits.from_settings(settings)),
        table=table,
        accounts=Accounts(store),
        submitter=Submitter(messages, plugins),
        bounces=Bounces(settings, hostname, relay_store, store, messages),
        trusted_proxies=parse_networks(settings.trusted_proxies),
        bodies=bodies or BodyBudget(settings.body_memory, settings.body_wait_seconds),
    )
    if dispatcher is not None:
        relay.raw_loader = RawLoader(relay_store)
        dispatcher.prepare_outgoing = relay.raw_loader
        relay.observer = f"relay-bounces-{secrets.token_hex(4)}"
        plugins.register(relay.observer, relay.bounces)
        relay.bounces.start()
    return relay
