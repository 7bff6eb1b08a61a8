"""访问控制: one IP / CIDR allow-list for the HTTP API and the SMTP relay.

An empty list restricts nothing: the HTTP API relies on API keys, the relay on AUTH. Once it has
entries, a caller outside all of them is refused by both (HTTP 403, SMTP 554 at RCPT), and a
relay client inside may relay without AUTH. A change that would leave out the address of the
caller making it is refused (:class:`LockOut`), for the API and the console alike. The rules
are cached for ``CACHE_SECONDS`` and reloaded; a change through this node's API takes effect
here at once, on other nodes within the cache time. If the database cannot be read, the last
rules known stay in force.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated

import msgspec
from msgspec import Meta

from gateway.errors import Conflict, Forbidden, Invalid, NotFound
from gateway.relay.store import AccessRuleRow, Address, Network, RelayStore
from gateway.store import UNAVAILABLE

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0


class LockOut(Conflict):
    """A rule change that would shut the caller's own address out (409)."""

    code = "would_lock_out"

    def __init__(self, address: Address | None, field: str) -> None:
        super().__init__(
            f"this change would shut out your own address {address or '(unknown)'}: "
            "add a rule covering it first",
            field,
        )
        self.address = address


def keeps(caller: Address | None, field: str) -> Callable[[Sequence[Network]], None]:
    """The check that the rules after a change still let ``caller`` in (or are none)."""

    def check(networks: Sequence[Network]) -> None:
        if networks and not covered(caller, networks):
            raise LockOut(caller, field)

    return check


class AccessRuleIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A named address range allowed to call the API and relay mail (a bare IP is one host)."""

    name: Annotated[str, Meta(min_length=1, max_length=200)]
    cidr: Annotated[str, Meta(min_length=1, max_length=64, examples=["10.0.0.0/8"])]


class AccessRuleView(msgspec.Struct, frozen=True):
    id: int
    name: str
    cidr: str
    created_at: str


class Verdict(msgspec.Struct, frozen=True):
    """``restricted``: the list has entries; ``inside``: the address is in one of them."""

    restricted: bool
    inside: bool

    @property
    def refused(self) -> bool:
        return self.restricted and not self.inside


def parse_network(text: str, field: str = "cidr") -> Network:
    """``10.0.0.0/8`` or a bare IP (a /32 or /128); Invalid naming ``field`` otherwise."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise Invalid(
            f"{text!r} is not an IP address or CIDR range (e.g. 10.0.0.0/8 or 192.0.2.7)", field
        ) from None


def parse_address(text: str | None) -> Address | None:
    """The address in ``text`` (IPv4-mapped IPv6 as IPv4), or None if it is not one."""
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_networks(text: str | None) -> tuple[Network, ...]:
    """A comma-separated list (``MSGGATE_TRUSTED_PROXIES``), already checked by the settings."""
    if not text:
        return ()
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in text.split(","))


def covered(address: Address | None, networks: Iterable[Network]) -> bool:
    return address is not None and any(address in n for n in networks)


def client_address(
    remote: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]
) -> Address | None:
    """The HTTP caller: the peer, or, when the peer is a trusted proxy, the last address in
    ``X-Forwarded-For`` that is not itself a trusted proxy (the leftmost if all are)."""
    peer = parse_address(remote)
    if not forwarded_for or not covered(peer, trusted):
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            return peer  # a garbled header: believe only the proxy itself
        if not covered(address, trusted):
            return address
        peer = address
    return peer


def view(row: AccessRuleRow) -> AccessRuleView:
    return AccessRuleView(row.id, row.name, str(row.cidr), row.created_at.isoformat())


class AccessList:
    """The access rules service: CRUD for the API and cached checks for callers."""

    def __init__(self, store: RelayStore, cache_seconds: float = CACHE_SECONDS) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._networks: tuple[Network, ...] | None = None
        self._expires = 0.0

    def invalidate(self) -> None:
        self._expires = 0.0

    async def networks(self) -> tuple[Network, ...]:
        now = time.monotonic()
        if self._networks is None or now >= self._expires:
            try:
                self._networks = tuple(await self.store.cidrs())
            except UNAVAILABLE as exc:
                if self._networks is None:
                    raise
                log.warning("access rules could not be reloaded (%r): keeping the last ones", exc)
            self._expires = now + self.cache_seconds
        return self._networks

    async def check(self, address: Address | None) -> Verdict:
        networks = await self.networks()
        return Verdict(bool(networks), covered(address, networks))

    async def require(self, caller: Callable[[], Address | None]) -> None:
        """Raise Forbidden (403) if the list has entries and the caller's address is in none
        of them. ``caller`` works the address out; it is asked only when the list has entries
        (an empty list lets everyone in, and most gateways have one)."""
        networks = await self.networks()
        if not networks:
            return
        address = caller()
        if not covered(address, networks):
            raise Forbidden(
                f"access denied: your address {address or 'unknown'} is not in the access list"
            )

    async def create(self, body: AccessRuleIn, caller: Address | None) -> AccessRuleView:
        """Add a rule; LockOut if the list would then leave out ``caller`` (who is asking)."""
        network = parse_network(body.cidr)
        row = await self.store.insert_rule(
            body.name.strip() or body.name, network, keeps(caller, "cidr")
        )
        self.invalidate()
        log.info("access rule %d %r added: %s", row.id, row.name, row.cidr)
        return view(row)

    async def list(self, name: str | None, ip: str | None) -> list[AccessRuleView]:
        address = None
        if ip:
            address = parse_address(ip)
            if address is None:
                raise Invalid(f"{ip!r} is not an IP address", "ip")
        return [view(r) for r in await self.store.list_rules(name, address)]

    async def delete(self, rule_id: int, caller: Address | None) -> None:
        """Delete a rule; LockOut if the rules left would leave out ``caller``."""
        if not await self.store.delete_rule(rule_id, keeps(caller, "id")):
            raise NotFound(f"no access rule with id {rule_id}", "id")
        self.invalidate()
        log.info("access rule %d deleted", rule_id)
