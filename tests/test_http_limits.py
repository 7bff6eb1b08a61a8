"""Hostile HTTP clients over real sockets: one address holding connections, trickling headers,
hammering without a key or with bad ones, while an authenticated caller from another loopback
address (127.0.0.2) is still served.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from gateway.api.connections import ConnectionGate, GatedSite
from gateway.api.limits import REQUEST_LIMITS, RequestLimits, address_key
from gateway.testing import RunningGateway

OTHER = "127.0.0.2"  # another address of the loopback network, for the caller to protect
DEADLINE = 30.0  # generous: the machine may be loaded; nothing here waits for it to pass


def host_port(gw: RunningGateway) -> tuple[str, int]:
    url = urlsplit(gw.url)
    return url.hostname or "127.0.0.1", url.port or 80


async def raw_connection(
    gw: RunningGateway, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = host_port(gw)
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the answer the gateway sends and closes with."""
    raw = await asyncio.wait_for(reader.read(), DEADLINE)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@asynccontextmanager
async def client_from(
    source: str, api_key: str | None = None
) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        yield http


async def status_of(http: aiohttp.ClientSession, url: str, **kwargs) -> tuple[int, dict, dict]:
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=DEADLINE), **kwargs) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def until(check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"not within {DEADLINE} s: {what}"
        await asyncio.sleep(0.02)


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    for writer in writers:
        with suppress(OSError):
            await writer.wait_closed()


async def test_one_address_cannot_hold_more_connections_than_its_cap(make_gateway):
    gw = await make_gateway(http_max_connections_per_address=5, http_header_timeout=120)
    idle = [await raw_connection(gw) for _ in range(5)]
    try:
        reader, writer = await raw_connection(gw)  # the sixth: answered and closed at once
        status, headers, body = await read_answer(reader)
        writer.close()
        assert status == 429 and int(headers["Retry-After"]) >= 1
        error = json.loads(body)["error"]
        assert error["code"] == "too_many_connections" and "127.0.0.1" in error["message"]
        async with client_from(OTHER, gw.api_key) as http:  # another address: served
            status, _, body = await status_of(http, gw.url + "/api/v1/accounts")
            assert status == 200, body
    finally:
        await close_all([w for _, w in idle])

    async def admitted_again() -> bool:  # closing them frees the address's connections
        async with client_from("127.0.0.1", gw.api_key) as http:
            try:
                return (await status_of(http, gw.url + "/api/v1/accounts"))[0] == 200
            except aiohttp.ContentTypeError:
                return False

    await until(admitted_again, "a closed connection is no longer counted")


async def test_connections_over_the_total_cap_are_answered_503(make_gateway):
    gw = await make_gateway(http_max_connections=4, http_header_timeout=120)
    idle = [await raw_connection(gw) for _ in range(4)]
    try:
        reader, writer = await raw_connection(gw, OTHER)
        status, headers, body = await read_answer(reader)
        writer.close()
        assert status == 503 and headers["Retry-After"]
        assert json.loads(body)["error"]["code"] == "busy"
    finally:
        await close_all([w for _, w in idle])


async def test_a_connection_that_trickles_its_headers_is_closed_after_the_header_timeout(
    make_gateway,
):
    gw = await make_gateway(http_header_timeout=1.0)
    reader, writer = await raw_connection(gw)
    writer.write(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    try:
        while not reader.at_eof():  # a header line every 0.2 s never completes the request
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
            with suppress(TimeoutError):
                assert await asyncio.wait_for(reader.read(1), 0.2) == b""
            assert time.monotonic() - started < DEADLINE, "the trickling connection stayed open"
    except ConnectionResetError:
        pass  # closed while we wrote: what we expect
    finally:
        writer.close()
    # a client that sends its request at once is not affected, and keeps its connection
    reader, writer = await raw_connection(gw)
    for _ in range(2):
        writer.write(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        line = await asyncio.wait_for(reader.readline(), DEADLINE)
        assert line.startswith(b"HTTP/1.1 200"), line
        length = 0
        while (header := await asyncio.wait_for(reader.readline(), DEADLINE)) != b"\r\n":
            if header.lower().startswith(b"content-length:"):
                length = int(header.split(b":")[1])
        await asyncio.wait_for(reader.readexactly(length), DEADLINE)
        await asyncio.sleep(1.5)  # past the header timeout: it is the first request's only
    writer.close()


SLOW_LOGIN = (
    b"POST /admin/login HTTP/1.1\r\nHost: x\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
)


async def test_unauthenticated_requests_of_one_address_are_capped_known_keys_pass(make_gateway):
    gw = await make_gateway(http_max_unauthenticated_per_address=3)
    limits = gw.runner.app[REQUEST_LIMITS]
    async with client_from("127.0.0.1", gw.api_key) as known:
        assert (await status_of(known, gw.url + "/api/v1/accounts"))[0] == 200  # key now known
        slow = [await raw_connection(gw) for _ in range(3)]
        try:
            for _, writer in slow:  # each waits in the handler for a body that never comes
                writer.write(SLOW_LOGIN)
            await until(lambda: sum(limits.running.values()) == 3, "three slow requests running")
            async with client_from("127.0.0.1", "mg_not-a-key") as stranger:
                status, headers, body = await status_of(stranger, gw.url + "/api/v1/accounts")
            assert status == 429 and headers["Retry-After"] == "1"
            assert body["error"]["code"] == "too_many_requests"
            assert (await status_of(known, gw.url + "/api/v1/accounts"))[0] == 200
            async with client_from(OTHER) as elsewhere:  # another address: its own budget
                status, _, body = await status_of(elsewhere, gw.url + "/api/v1/accounts")
                assert status == 401, body
            async with client_from(OTHER, gw.api_key) as other:
                assert (await status_of(other, gw.url + "/api/v1/accounts"))[0] == 200
        finally:
            await close_all([w for _, w in slow])
    await until(lambda: not limits.running, "the slow requests' slots are given back")
    async with client_from("127.0.0.1", "mg_not-a-key") as stranger:
        assert (await status_of(stranger, gw.url + "/api/v1/accounts"))[0] == 401


async def test_an_address_refused_too_often_is_answered_429_before_any_work(make_gateway):
    gw = await make_gateway(http_max_failures_per_address=5, http_failure_window=600)
    async with client_from("127.0.0.1", gw.api_key) as known:
        assert (await status_of(known, gw.url + "/api/v1/accounts"))[0] == 200
        for attempt in range(5):
            async with client_from("127.0.0.1", f"mg_guess-{attempt}") as guesser:
                assert (await status_of(guesser, gw.url + "/api/v1/accounts"))[0] == 401
        async with client_from("127.0.0.1", "mg_guess-again") as guesser:
            status, headers, body = await status_of(guesser, gw.url + "/api/v1/accounts")
        assert status == 429 and body["error"]["code"] == "too_many_requests"
        assert 500 < int(headers["Retry-After"]) <= 600
        async with client_from("127.0.0.1") as no_key:  # console and callbacks alike
            assert (await status_of(no_key, gw.url + "/api/v1/health"))[0] == 429
            async with no_key.get(gw.url + "/admin/login") as page:  # in the console's language
                assert page.status == 429 and int(page.headers["Retry-After"]) > 500
                assert "请求过多" in await page.text() and "127.0.0.1" in await page.text()
        # the owner of a valid key from that address, and everyone elsewhere, are unaffected
        assert (await status_of(known, gw.url + "/api/v1/accounts"))[0] == 200
    async with client_from(OTHER, "mg_guess-0") as elsewhere:
        assert (await status_of(elsewhere, gw.url + "/api/v1/accounts"))[0] == 401


async def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_counted(make_gateway):
    gw = await make_gateway(
        trusted_proxies="127.0.0.1", http_max_failures_per_address=3, http_failure_window=600
    )

    async def status(forwarded_for: str) -> int:
        async with client_from("127.0.0.1", "mg_wrong") as http:
            headers = {"X-Forwarded-For": forwarded_for}
            return (await status_of(http, gw.url + "/api/v1/accounts", headers=headers))[0]

    assert [await status("203.0.113.5") for _ in range(4)] == [401, 401, 401, 429]
    assert await status("203.0.113.6") == 401  # another client behind the same proxy
    # an IPv6 client counts by its /64: another address in it is the same client
    assert [await status(f"2001:db8::{n}") for n in (1, 2, 3, 4)] == [401, 401, 401, 429]
    assert await status("2001:db8:0:1::1") == 401


async def test_a_burst_from_a_client_whose_key_is_not_checked_yet_queues_instead_of_429(
    make_gateway,
):
    gw = await make_gateway(http_max_unauthenticated_per_address=2)
    limits = gw.runner.app[REQUEST_LIMITS]
    async with client_from("127.0.0.1", gw.api_key) as http:  # its key: new to this node
        answers = await asyncio.gather(
            *[status_of(http, gw.url + "/api/v1/accounts") for _ in range(30)]
        )
    assert [status for status, _, _ in answers] == [200] * 30
    assert not limits.running and not limits.waiting  # every slot given back


def test_the_gate_answers_and_times_out_under_uvloop_as_msggate_serve_runs():
    """``msggate serve`` runs on uvloop, whose transports differ from asyncio's."""
    uvloop = pytest.importorskip("uvloop")

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", hello)
        runner = web.AppRunner(app)
        await runner.setup()
        site = GatedSite(runner, "127.0.0.1", 0, ConnectionGate(10, 1, header_timeout=0.5))
        await site.start()
        try:
            first = await asyncio.open_connection("127.0.0.1", site.port)
            second = await asyncio.open_connection("127.0.0.1", site.port)
            status, _, body = await read_answer(second[0])  # over the address's one connection
            assert status == 429 and b"too_many_connections" in body
            assert await asyncio.wait_for(first[0].read(), DEADLINE) == b""  # no request: closed
            reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert (await read_answer(reader))[0] == 200
            for _, w in (first, second, (reader, writer)):
                w.close()
        finally:
            await runner.cleanup()

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


async def test_a_slot_given_back_goes_to_the_first_in_the_queue_without_overbooking():
    limits = RequestLimits(max_concurrent=1, max_failures=3, window=60)
    await limits.enter("a")
    waiter = asyncio.ensure_future(limits.enter("a"))
    await until(lambda: bool(limits.waiting.get("a")), "the second request queues")
    limits.leave("a")  # handed over, not freed: a newcomer cannot slip in between
    await waiter
    assert limits.running == {"a": 1} and not limits.waiting
    limits.leave("a")
    assert limits.running == {}


def test_an_ipv6_caller_counts_by_its_64_and_old_refusals_are_forgotten(monkeypatch):
    one, same, other = (ipaddress.ip_address(a) for a in ("2001:db8::1", "2001:db8::ff", "::1"))
    assert address_key(one) == address_key(same) != address_key(other)
    limits = RequestLimits(max_concurrent=1, max_failures=2, window=60)
    monkeypatch.setattr("gateway.api.limits.MAX_ADDRESSES", 3)
    now = time.monotonic()
    monkeypatch.setattr("gateway.api.limits.time.monotonic", lambda: now - 120)
    for n in range(3):
        limits._failed(ipaddress.ip_address(f"192.0.2.{n}"))
    monkeypatch.setattr("gateway.api.limits.time.monotonic", lambda: now)
    limits._failed(ipaddress.ip_address("192.0.2.9"))  # the table is full: expired ones go
    assert list(limits.failures) == [ipaddress.ip_address("192.0.2.9")]


async def test_a_client_hanging_up_mid_body_is_not_reported_as_a_database_outage(
    make_gateway, caplog
):
    gw = await make_gateway()
    caplog.set_level(logging.INFO)
    _, writer = await raw_connection(gw)
    writer.write(
        b"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {gw.api_key}\r\nContent-Length: 1000\r\n\r\n".encode()
        + b'{"channel": "em'
    )
    await writer.drain()
    limits = gw.runner.app[REQUEST_LIMITS]
    await until(lambda: not limits.running, "the key checked out: the request reads its body")
    await asyncio.sleep(0.2)  # let it start reading: we check the log, not a timing
    writer.close()
    await until(
        lambda: "went away" in caplog.text or "database unavailable" in caplog.text,
        "the hang-up is logged",
    )
    assert "database unavailable" not in caplog.text
    assert (await gw.get("/api/v1/health"))[0] == 200


def test_the_connection_cap_fits_under_the_open_file_limit():
    """Run in a child process: it changes its own open-file limit."""
    code = (
        "import resource; from gateway.api.connections import file_limit_cap as cap;"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 600));"
        "print(cap(1000, 500), resource.getrlimit(resource.RLIMIT_NOFILE)[0]);"
        "print(cap(100, 50))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # raised to the hard limit 600, which leaves 600 - 500 - 64 for HTTP; then room enough
    assert out.stdout.split() == ["36", "600", "100"]
