"""How much of the relay one client may hold: connections per address, commands and time per
session, and a connection cap below the process's open-file limit.

Before these limits, 600 idle connections from one address filled the 500-connection cap and
authenticated users were refused; a client trickling NOOPs kept a session for ever.
"""

from __future__ import annotations

import asyncio
import resource

import pytest

from gateway.relay.limits import AddressSlots, address_key, plan_connections
from tests.processes import spawn
from tests.relay_support import RawSmtp, start_relay

HOSTILE = "127.0.0.2"  # any 127.x.y.z reaches the relay on Linux: a second client address


async def greeted(port: int, source: str) -> tuple[RawSmtp, bytes]:
    smtp = await RawSmtp.connect(port, source)
    return smtp, await smtp.reply()


async def until_greeted(port: int, source: str, timeout: float = 20) -> RawSmtp:
    """Connect until the relay says 220 (it frees a slot once it has seen the close)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        smtp, greeting = await greeted(port, source)
        if greeting.startswith(b"220"):
            return smtp
        smtp.close()
        assert asyncio.get_running_loop().time() < deadline, greeting
        await asyncio.sleep(0.05)


async def test_one_address_gets_its_limit_others_still_get_in(make_gateway, tmp_path):
    relay = await start_relay(make_gateway, tmp_path, smtp_max_connections_per_address=3)
    held = []
    try:
        for _ in range(3):
            smtp, greeting = await greeted(relay.port, HOSTILE)
            held.append(smtp)
            assert greeting.startswith(b"220"), greeting
        smtp, greeting = await greeted(relay.port, HOSTILE)
        assert greeting.startswith(
            b"421 4.7.0 Too many connections from your address 127.0.0.2 (at most 3)"
        ), greeting
        assert await smtp.closed()
        other, greeting = await greeted(relay.port, "127.0.0.1")  # another client is served
        held.append(other)
        assert greeting.startswith(b"220"), greeting
        held.pop(0).close()  # a slot given back is a slot to take again
        held.append(await until_greeted(relay.port, HOSTILE))
    finally:
        for smtp in held:
            smtp.close()


async def test_600_idle_connections_from_one_address_leave_room_for_an_authenticated_user(
    make_gateway, tmp_path
):
    """The attack of the issue, with the default limits: it used to take all 500 connections."""
    relay = await start_relay(make_gateway, tmp_path)
    user = await relay.user()
    attack = await asyncio.gather(*(greeted(relay.port, HOSTILE) for _ in range(600)))
    try:
        greetings = [greeting[:9] for _, greeting in attack]
        assert greetings.count(b"220 local") == 20 and greetings.count(b"421 4.7.0") == 580
        mail = b"Subject: still served\r\n\r\nok\r\n"
        code, reply = await relay.send(mail, ["ops@example.com"], user=user)
        assert code == 250, reply
    finally:
        for smtp, _ in attack:
            smtp.close()


async def test_an_authenticated_session_gives_its_address_slot_back(make_gateway, tmp_path):
    relay = await start_relay(
        make_gateway, tmp_path, smtp_max_connections_per_address=1, smtp_allow_plain_auth=True
    )
    user = await relay.user()
    first, greeting = await greeted(relay.port, HOSTILE)
    try:
        assert greeting.startswith(b"220")
        await first.login(user)  # known and accountable: no longer counted against the address
        second = await until_greeted(relay.port, HOSTILE)
        second.close()
    finally:
        first.close()


async def test_addresses_in_the_access_list_are_not_limited_per_address(
    make_database, make_gateway, tmp_path
):
    database = await make_database()  # its own: an access rule applies to every gateway on it
    relay = await start_relay(
        make_gateway, tmp_path, database_url=database, smtp_max_connections_per_address=1
    )
    for name, cidr in (("tests", "127.0.0.1"), ("app server", "127.0.0.3")):
        status, _ = await relay.gw.post("/api/v1/access-rules", {"name": name, "cidr": cidr})
        assert status == 201
    held = []
    try:
        for _ in range(3):
            smtp, greeting = await greeted(relay.port, "127.0.0.3")
            held.append(smtp)
            assert greeting.startswith(b"220"), greeting
        smtp, greeting = await greeted(relay.port, "127.0.0.4")
        held.append(smtp)
        assert greeting.startswith(b"220")
        smtp, greeting = await greeted(relay.port, "127.0.0.4")  # not in the list: limited
        held.append(smtp)
        assert greeting.startswith(b"421 4.7.0"), greeting
    finally:
        for smtp in held:
            smtp.close()


async def test_a_session_over_its_command_limit_gets_421_and_is_closed(make_gateway, tmp_path):
    relay = await start_relay(make_gateway, tmp_path, smtp_max_commands=5)
    smtp, _ = await greeted(relay.port, "127.0.0.1")
    try:
        assert (await smtp.command(b"EHLO x")).startswith(b"250")
        for _ in range(4):
            assert (await smtp.command(b"NOOP")).startswith(b"250")
        reply = await smtp.command(b"NOOP")
        assert reply.startswith(b"421 4.7.0 Too many commands in one session (at most 5)"), reply
        assert await smtp.closed()
    finally:
        smtp.close()


async def test_trickled_noops_do_not_extend_the_command_phase(make_gateway, tmp_path):
    relay = await start_relay(
        make_gateway, tmp_path, smtp_session_timeout=1.0, smtp_command_timeout=60
    )
    smtp, _ = await greeted(relay.port, "127.0.0.1")
    answered = 0
    try:
        while True:  # a NOOP every 0.2 s: each restarts the command timeout, none the deadline
            reply = await smtp.command(b"NOOP")
            if not reply.startswith(b"250"):
                break
            answered += 1
            assert answered < 200, "the session was never closed"
            await asyncio.sleep(0.2)
        assert reply.startswith(b"421 4.4.2 No message sent in 1 seconds"), reply
        assert answered >= 2
        assert await smtp.closed()
    finally:
        smtp.close()


async def test_a_finished_message_moves_the_command_phase_deadline_on(make_gateway, tmp_path):
    relay = await start_relay(
        make_gateway, tmp_path, smtp_session_timeout=2.0, smtp_allow_plain_auth=True
    )
    user = await relay.user()
    loop = asyncio.get_running_loop()
    smtp, _ = await greeted(relay.port, "127.0.0.1")
    try:
        connected = loop.time()
        await smtp.login(user)
        while loop.time() - connected < 1.5:
            assert (await smtp.command(b"NOOP")).startswith(b"250")
            await asyncio.sleep(0.1)
        assert (await smtp.command(b"MAIL FROM:<app@example.com>")).startswith(b"250")
        assert (await smtp.command(b"RCPT TO:<ops@example.com>")).startswith(b"250")
        assert (await smtp.command(b"DATA")).startswith(b"354")
        assert (await smtp.command(b"Subject: x\r\n\r\nbody\r\n.")).startswith(b"250")
        sent = loop.time()
        while (await smtp.command(b"NOOP")).startswith(b"250"):
            await asyncio.sleep(0.1)
        # without the message the session would have closed 2 s after connecting, before `sent`
        # + 0.5; the message gave it 2 s more from its 250
        assert loop.time() - sent > 1.0
    finally:
        smtp.close()


def test_ipv6_clients_are_counted_by_their_64():
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:2") == "2001:db8::/64"
    assert address_key("2001:db8:0:1::1") != address_key("2001:db8::1")
    assert address_key("192.0.2.7") == "192.0.2.7"
    slots = AddressSlots(limit=2)
    assert slots.take("a") and slots.take("a") and not slots.take("a") and slots.take("b")
    slots.give_back("a")
    assert slots.take("a")


@pytest.mark.parametrize(
    ("configured", "headroom", "soft", "hard", "cap", "raise_to"),
    [
        (500, 330, 20000, 20000, 500, None),  # room enough
        (1000, 330, 1024, 524288, 1000, 1330),  # systemd's 1024 soft limit: raised as needed
        (1000, 330, 1024, 1024, 694, None),  # the hard limit is the end: the cap is cut
        (500, 330, 400, 600, 270, 600),  # raised as far as allowed, the cap still cut
        (500, 330, 200, 200, 1, None),  # never 0: one connection at least
        (500, 330, resource.RLIM_INFINITY, resource.RLIM_INFINITY, 500, None),
    ],
)
def test_the_connection_cap_stays_below_the_open_file_limit(
    configured, headroom, soft, hard, cap, raise_to
):
    assert plan_connections(configured, headroom, (soft, hard)) == (cap, raise_to)


LIMITED_SERVE = (
    "import resource, runpy, sys;"
    "resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400));"
    "sys.argv = ['msggate', 'serve', *sys.argv[1:]];"
    "runpy.run_module('gateway.cli', run_name='__main__')"
)


async def test_serve_clamps_the_connection_cap_to_the_file_limit_and_says_so(
    make_database, secret_key, tmp_path
):
    database = await make_database()
    gateway = await spawn(
        "-c",
        LIMITED_SERVE,
        "--http-port=0",
        "--smtp-port=0",
        "--smtp-host=127.0.0.1",
        f"--database-url={database}",
        f"--secret-key={secret_key}",
        f"--data-dir={tmp_path / 'data'}",
        "--db-pool-size=2",
        "--dispatch-concurrency=4",
        "--smtp-max-connections-per-address=1000",
    )
    try:
        # 400 open files, 2 + 4 + 256 kept for the rest: 138 relay connections at most
        await gateway.wait_line(r"MSGGATE_SMTP_MAX_CONNECTIONS=500 clamped to 138")
        match = await gateway.wait_line(r"SMTP relay listening on 127\.0\.0\.1:(\d+)")
        port = int(match.group(1))
        await gateway.wait_line(r"msggate \S+ is running")  # SIGTERM is handled from here on
        held = []
        try:
            for _ in range(138):
                smtp, greeting = await greeted(port, "127.0.0.1")
                held.append(smtp)
                assert greeting.startswith(b"220"), greeting
            smtp, greeting = await greeted(port, "127.0.0.1")
            held.append(smtp)
            assert greeting.startswith(b"421 4.7.0 Too many connections"), "\n".join(gateway.lines)
        finally:
            for smtp in held:
                smtp.close()
    finally:
        assert await gateway.stop() == 0, "\n".join(gateway.lines[-20:])
