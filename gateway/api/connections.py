"""Open HTTP connections on a budget: in total, per address, and in time to a first request.

aiohttp serves every connection it accepts for as long as the client keeps it (and gives a
fresh connection over an hour to send its first request), so one address holding many idle
or trickling connections could take every file descriptor the process has. The gate sits
between the listening socket and aiohttp: a connection over the total cap is answered 503,
one over its address's cap 429 (both with ``Retry-After`` and the JSON error body, then
closed), and one that has not sent its first request's headers within ``header_timeout`` is
closed. Later requests on a kept-alive connection are bounded by aiohttp's keep-alive timeout,
which does not restart while headers trickle in.

Connections from a trusted proxy are exempt from the per-address cap: they carry many clients.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from collections.abc import Callable, Sequence
from typing import cast

from aiohttp import web

from gateway.relay.access import Address, Network, covered, parse_address

log = logging.getLogger(__name__)

_END_OF_HEADERS = (b"\r\n\r\n", b"\n\n")  # bare LF too: the parser may be lenient
_RESERVED_FILES = 64  # descriptors kept for the database pool, logs, plugins' own clients


def refusal(status: int, reason: str, code: str, message: str, retry_after: int) -> bytes:
    """A complete HTTP/1.1 answer with the API's JSON error body, for a connection we close."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: {retry_after}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def file_limit_cap(wanted: int, other_connections: int) -> int:
    """``wanted``, lowered if need be so that it and ``other_connections`` (the SMTP listener's
    cap) fit under the process's open-file limit with some to spare. The soft limit is raised
    towards the hard one first, as Go and nginx do: the hard limit is the administrator's."""
    needed = wanted + other_connections + _RESERVED_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, raised, exc)
    if soft == resource.RLIM_INFINITY:
        return wanted
    room = max(16, soft - other_connections - _RESERVED_FILES)
    if wanted > room:
        log.warning(
            "MSGGATE_HTTP_MAX_CONNECTIONS=%d does not fit the open-file limit %d: using %d",
            wanted,
            soft,
            room,
        )
    return min(wanted, room)


class ConnectionGate:
    """Counts open connections and admits or refuses each new one."""

    def __init__(
        self,
        max_total: int,
        max_per_address: int,
        header_timeout: float,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.header_timeout = header_timeout
        self.trusted_proxies = tuple(trusted_proxies)
        self.total = 0
        self.by_address: dict[Address | None, int] = {}

    def admit(self, address: Address | None) -> bytes | None:
        """Count a new connection from ``address``; or the answer refusing it (not counted)."""
        if self.total >= self.max_total:
            return refusal(
                503,
                "Service Unavailable",
                "busy",
                "the server has as many connections open as it takes; try again shortly",
                5,
            )
        held = self.by_address.get(address, 0)
        if held >= self.max_per_address and not covered(address, self.trusted_proxies):
            return refusal(
                429,
                "Too Many Requests",
                "too_many_connections",
                f"your address {address or 'unknown'} has {held} connections open, the most "
                "one address may: reuse them or close some",
                1,
            )
        self.total += 1
        self.by_address[address] = held + 1
        return None

    def release(self, address: Address | None) -> None:
        self.total -= 1
        left = self.by_address.get(address, 1) - 1
        if left > 0:
            self.by_address[address] = left
        else:
            self.by_address.pop(address, None)

    def protocol_factory(self, server: Callable[[], asyncio.Protocol]) -> Callable[[], _Gated]:
        return lambda: _Gated(self, server())


class _Gated(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the gate (every event is passed on)."""

    def __init__(self, gate: ConnectionGate, inner: asyncio.Protocol) -> None:
        self.gate = gate
        self.inner: asyncio.Protocol | None = inner
        self.address: Address | None = None
        self.counted = False
        self.deadline: asyncio.TimerHandle | None = None
        self.tail = b""  # the last bytes seen, until the first request's headers are complete

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self.address = parse_address(peer[0] if isinstance(peer, tuple) else None)
        answer = self.gate.admit(self.address)
        if answer is not None:
            self.inner = None
            # uvloop's transports are not asyncio.WriteTransport subclasses: no isinstance here
            cast(asyncio.WriteTransport, transport).write(answer)
            transport.close()
            return
        self.counted = True
        self.deadline = asyncio.get_running_loop().call_later(
            self.gate.header_timeout, self._too_slow, transport
        )
        assert self.inner is not None
        self.inner.connection_made(transport)

    def _too_slow(self, transport: asyncio.BaseTransport) -> None:
        self.deadline = None
        log.info(
            "HTTP connection from %s closed: no request within %.0f s",
            self.address,
            self.gate.header_timeout,
        )
        transport.abort()  # nothing to flush: the client has not asked for anything

    def data_received(self, data: bytes) -> None:
        if self.deadline is not None:
            seen = self.tail + data
            if any(end in seen for end in _END_OF_HEADERS):
                self.deadline.cancel()
                self.deadline = None
                self.tail = b""
            else:
                self.tail = seen[-3:]
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if self.counted:
            self.counted = False
            self.gate.release(self.address)
        if self.inner is not None:
            self.inner.connection_lost(exc)


class GatedSite(web.TCPSite):
    """A ``web.TCPSite`` whose connections pass through a :class:`ConnectionGate`."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, gate: ConnectionGate, **kwargs
    ) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.gate = gate

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self.gate.protocol_factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
