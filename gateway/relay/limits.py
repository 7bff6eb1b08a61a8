"""How much of the relay one client may hold: connections per address, and the total cap.

A client address (an IPv6 client by its /64, which one host or one customer usually owns) may
keep ``smtp_max_connections_per_address`` connections open; the next is answered 421 and
closed. Two kinds of client are treated more generously, as Postfix treats ``mynetworks``:
addresses in the access list are not limited per address (a big internal application server
may keep many connections), and a session that has authenticated gives its address's slot
back (the user is known and accountable, and others behind the same NAT can connect). Both
still count towards the total cap, which is kept below the process's file limit.
"""

from __future__ import annotations

import ipaddress
import logging
import resource
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# File descriptors kept free besides the database pool and the dispatcher's connections: the
# HTTP API's connections, Redis, log files, spooled message bodies, certificates, the listeners.
FD_HEADROOM = 256

TOO_MANY_FROM = (
    "421 4.7.0 Too many connections from your address {address} (at most {limit}); try again later"
)


def address_key(address: str) -> str:
    """The key an address is counted under: an IPv4 address itself, an IPv6 address's /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class AddressSlots:
    """Open connections per address key, each taken when a session starts."""

    limit: int
    open: dict[str, int] = field(default_factory=dict)

    def take(self, key: str) -> bool:
        """Count one more connection for ``key``; False (nothing counted) if it has its limit."""
        count = self.open.get(key, 0)
        if count >= self.limit:
            return False
        self.open[key] = count + 1
        return True

    def give_back(self, key: str) -> None:
        count = self.open.get(key, 0) - 1
        if count > 0:
            self.open[key] = count
        else:
            self.open.pop(key, None)


@dataclass
class SessionLimits:
    """What every relay session is held to; shared by the sessions of one listener."""

    max_commands: int
    session_timeout: float
    slots: AddressSlots
    trusted: Callable[[str], Awaitable[bool]]  # is the address in the access list?

    async def admit(self, address: str) -> tuple[str | None, str | None]:
        """(the slot taken or None, the refusal or None) for a new connection from ``address``."""
        key = address_key(address)
        if self.slots.take(key):
            return key, None
        if await self.trusted(address):
            return None, None
        log.warning("relay: refusing a connection from %s: %d open", address, self.slots.limit)
        return None, TOO_MANY_FROM.format(address=address, limit=self.slots.limit)


def plan_connections(
    configured: int, headroom: int, limits: tuple[int, int] | None = None
) -> tuple[int, int | None]:
    """(the connection cap, the soft file limit to set or None) for ``configured`` connections.

    Each connection is one file descriptor; ``headroom`` more are kept for everything else. If
    the soft limit is too low and the hard limit allows, the soft limit is raised as far as
    needed (what systemd's documentation asks of programs that need more than 1024, as long
    as they do not use select()); whatever is still missing is taken off the cap.
    """
    soft, hard = limits or resource.getrlimit(resource.RLIMIT_NOFILE)
    need = configured + headroom
    if soft == resource.RLIM_INFINITY or need <= soft:
        return configured, None
    raise_to = need if hard == resource.RLIM_INFINITY else min(need, hard)
    new_soft = raise_to if raise_to > soft else None
    return max(1, min(configured, max(raise_to, soft) - headroom)), new_soft


def connection_cap(configured: int, headroom: int) -> int:
    """Raise the soft file limit if needed and allowed; the cap, said in a log line if cut."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    cap, new_soft = plan_connections(configured, headroom, (soft, hard))
    if new_soft is not None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
        log.info("SMTP relay: raised the open-file limit from %d to %d", soft, new_soft)
    if cap < configured:
        log.warning(
            "SMTP relay: MSGGATE_SMTP_MAX_CONNECTIONS=%d clamped to %d: the open-file limit is"
            " %d and %d are kept for the database, HTTP and files (raise it with ulimit -n or"
            " LimitNOFILE=)",
            configured,
            cap,
            new_soft or soft,
            headroom,
        )
    return cap
