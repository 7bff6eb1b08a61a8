"""Password guessing against the console and the SMTP relay (gateway/throttle.py), for real.

Real gateways, PostgreSQL, HTTP and SMTP. Addresses: the console believes X-Forwarded-For from
127.0.0.1 (a trusted proxy); SMTP clients bind to other loopback addresses (127.x.y.z), which
the relay reads as their peer address. Every test uses random addresses of its own, because the
counters live in the database that all tests of a run share.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import AsyncIterator
from dataclasses import replace

import aiosmtplib
import argon2
import pytest

from admin.app import CONSOLE
from gateway.passwords import Passwords, PasswordsBusy
from gateway.throttle import Limits, Throttle, TooManyAttempts
from tests.browser_fixtures import PASSWORD, add_console_user
from tests.gateway_fixtures import RunningGateway
from tests.relay_support import PASSWORD as RELAY_PASSWORD
from tests.relay_support import Relay, start_relay
from tests.test_console_http import CSRF_FIELD, Client

WRONG = "not the password at all"


def address() -> str:
    """A loopback address no other test uses (127.0.0.1 is left to the others)."""
    return "127.{}.{}.{}".format(*random.sample(range(2, 250), 3))


def fast(gateway: RunningGateway, throttle) -> None:
    # The growing delay is proven in test_relay_smtp; here it would only make tests slow.
    throttle.limits = replace(throttle.limits, base_delay=0.01, max_delay=0.02)


# -- console -----------------------------------------------------------------------------------


@pytest.fixture
async def browsers() -> AsyncIterator:
    """Factory: ``browsers(gateway, ip)`` is a console client whose address is ``ip``."""
    made: list[Client] = []

    def make(gateway: RunningGateway, ip: str) -> Client:
        made.append(Client(gateway, headers={"X-Forwarded-For": ip}))
        return made[-1]

    yield make
    for c in made:
        await c.close()


async def console_gateway(make_gateway, **settings) -> RunningGateway:
    gw = await make_gateway(dispatch=False, trusted_proxies="127.0.0.1", **settings)
    fast(gw, gw.runner.app[CONSOLE].users.throttle)
    return gw


async def login(c: Client, name: str, password: str) -> tuple[int, str, dict]:
    """One login: (status, page, headers)."""
    _, page, _ = await c.get("/login")
    token = CSRF_FIELD.search(page).group(1)
    form = {"_csrf": token, "name": name, "password": password}
    status, page, answer = await c.post("/login", form)
    return status, page, dict(answer.headers)


async def parallel_logins(c: Client, name: str, password: str, n: int) -> list[tuple[int, str]]:
    """``n`` logins at once from one client (one login form, so one CSRF token)."""
    _, page, _ = await c.get("/login")
    token = CSRF_FIELD.search(page).group(1)

    async def one() -> tuple[int, str]:
        status, text, _ = await c.post(
            "/login", {"_csrf": token, "name": name, "password": password}
        )
        return status, text

    return await asyncio.gather(*(one() for _ in range(n)))


async def test_forty_parallel_wrong_logins_check_only_the_budget(make_gateway, browsers):
    gw = await console_gateway(make_gateway)
    name = await add_console_user(gw, "admin")
    answers = await parallel_logins(browsers(gw, address()), name, WRONG, 40)
    statuses = sorted(s for s, _ in answers)
    # 401 = the password was checked; 429 = refused before any check.
    assert statuses == [401] * 5 + [429] * 35, statuses


async def test_login_counters_are_shared_by_two_gateways_on_one_database(make_gateway, browsers):
    first = await console_gateway(make_gateway)
    second = await console_gateway(make_gateway)
    name = await add_console_user(first, "admin")
    ip = address()
    answers = await asyncio.gather(
        parallel_logins(browsers(first, ip), name, WRONG, 20),
        parallel_logins(browsers(second, ip), name, WRONG, 20),
    )
    statuses = sorted(s for part in answers for s, _ in part)
    assert statuses == [401] * 5 + [429] * 35, statuses
    # either node now holds this user back from this address, even with the right password
    for gw in (first, second):
        assert await browsers(gw, ip).login(name) == 429


async def test_owner_gets_in_from_a_clean_address_while_a_guesser_is_held_back(
    make_gateway, browsers
):
    gw = await console_gateway(make_gateway)
    owner = await add_console_user(gw, "admin")
    guesser = browsers(gw, address())
    for _ in range(5):
        assert await guesser.login(owner, WRONG) == 401
    status, page, headers = await login(guesser, owner, PASSWORD)
    assert status == 429 and int(headers["Retry-After"]) > 0
    assert "该账号从您的地址登录失败次数过多" in page and "账号本身不会被锁定" in page
    assert await browsers(gw, address()).login(owner) == 303  # the owner, elsewhere: in
    other = await add_console_user(gw, "operator")
    assert await guesser.login(other) == 303  # other users from the guesser's address: in


async def test_an_address_guessing_many_names_is_held_back_for_all_of_them(make_gateway, browsers):
    gw = await console_gateway(make_gateway, auth_failures_per_address=8)
    user = await add_console_user(gw, "operator")
    guesser = browsers(gw, address())
    for i in range(8):
        assert await guesser.login(f"nobody-{i}", WRONG) == 401
    status, page, _ = await login(guesser, user, PASSWORD)
    assert status == 429 and "您的地址登录失败次数过多" in page
    assert await browsers(gw, address()).login(user) == 303


async def test_a_user_guessed_from_many_addresses_still_gets_in_from_a_clean_one(
    make_gateway, browsers
):
    gw = await console_gateway(make_gateway, auth_failures_per_user=3)
    owner = await add_console_user(gw, "admin")
    for _ in range(3):  # a botnet: one guess from each address
        assert await browsers(gw, address()).login(owner, WRONG) == 401
    late = browsers(gw, address())
    assert await late.login(owner, WRONG) == 401  # a new address is still checked once...
    status, page, _ = await login(late, owner, WRONG)
    assert status == 429 and "该账号从多个地址登录失败次数过多" in page  # ...but only once
    assert await browsers(gw, address()).login(owner) == 303  # the owner, from a clean address


async def test_an_ipv6_guesser_cannot_dodge_the_limit_within_its_own_64(make_gateway, browsers):
    gw = await console_gateway(make_gateway)
    name = await add_console_user(gw, "operator")
    prefix = "2001:db8:{:x}:{:x}".format(*random.sample(range(1, 0xFFFF), 2))
    for i in range(5):
        assert await browsers(gw, f"{prefix}::{i + 1:x}").login(name, WRONG) == 401
    assert await browsers(gw, f"{prefix}:ffff:1:2:3").login(name) == 429  # the same /64
    assert (
        await browsers(gw, f"2001:db8:ffff:{random.randrange(1, 0xFFFF):x}::1").login(name) == 303
    )


async def test_guessing_the_current_password_on_the_profile_page_is_limited_too(
    make_gateway, browsers
):
    gw = await console_gateway(make_gateway)
    c = browsers(gw, address())
    assert await c.login(await add_console_user(gw, "readonly")) == 303
    token = await c.csrf()
    change = {"_csrf": token, "new_password": "a new password!", "new_password2": "a new password!"}
    for _ in range(5):
        status, _, _ = await c.post("/profile/password", {**change, "current_password": WRONG})
        assert status == 422
    status, page, _ = await c.post("/profile/password", {**change, "current_password": PASSWORD})
    assert status == 429 and "该账号从您的地址登录失败次数过多" in page


async def test_throttled_login_speaks_english_to_english_users(make_gateway, browsers):
    gw = await console_gateway(make_gateway)
    name = await add_console_user(gw, "operator")
    c = browsers(gw, address())
    for _ in range(5):
        assert await c.login(name, WRONG) == 401
    c.session.cookie_jar.update_cookies({"msggate_lang": "en"})
    status, page, _ = await login(c, name, PASSWORD)
    assert status == 429
    assert "Too many failed logins for this user from your address" in page
    assert re.search(r"try again from here in \d+ minutes", page)


# -- relay -------------------------------------------------------------------------------------


async def auth(relay: Relay, ip: str, user: str, password: str) -> int:
    """AUTH PLAIN in a session of its own from ``ip``: the reply code."""
    async with relay.session(source=ip) as smtp:
        try:
            return (await smtp.auth_plain(user, password)).code
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code


@pytest.fixture
async def relay(make_gateway, tmp_path) -> Relay:
    # forty sessions at once from one address: more than the relay's connection limit per address
    relay = await start_relay(
        make_gateway, tmp_path, auth_failures_per_user=6, smtp_max_connections_per_address=100
    )
    fast(relay.gw, relay.gw.services.relay.throttle)
    return relay


async def test_forty_parallel_wrong_auths_check_only_the_budget(relay):
    user, ip = await relay.user(), address()
    codes = await asyncio.gather(*(auth(relay, ip, user, WRONG) for _ in range(40)))
    # 535 = checked and wrong; 454 = refused before any check
    assert sorted(codes) == [454] * 35 + [535] * 5, codes


async def test_relay_user_is_limited_across_addresses_but_gets_in_from_a_clean_one(relay):
    user = await relay.user()
    for _ in range(6):  # six addresses, one wrong password each: the user's budget is used
        assert await auth(relay, address(), user, WRONG) == 535
    late = address()
    assert await auth(relay, late, user, WRONG) == 535  # a new address is checked once...
    async with relay.session(source=late) as smtp:
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await smtp.auth_plain(user, WRONG)
    assert refused.value.code == 454 and "for this user" in refused.value.message  # ...only once
    assert await auth(relay, address(), user, RELAY_PASSWORD) == 235  # the owner: in


async def test_shared_address_lets_the_right_password_in_despite_others_mistakes(relay):
    nat = address()  # one NAT address in front of many applications
    clumsy = [await relay.user() for _ in range(3)]

    async def four_wrong(user: str) -> list[int]:
        return [await auth(relay, nat, user, WRONG) for _ in range(4)]

    # 4 wrong each: 12 from the address, none over its own budget
    assert await asyncio.gather(*map(four_wrong, clumsy)) == [[535] * 4] * 3
    careful = await relay.user()
    assert await auth(relay, nat, careful, RELAY_PASSWORD) == 235
    assert await auth(relay, nat, clumsy[0], RELAY_PASSWORD) == 235
    # one of them, over its own budget, is held back from there — and only from there
    for _ in range(5):
        await auth(relay, nat, clumsy[1], WRONG)
    assert await auth(relay, nat, clumsy[1], RELAY_PASSWORD) == 454
    assert await auth(relay, nat, careful, RELAY_PASSWORD) == 235
    assert await auth(relay, address(), clumsy[1], RELAY_PASSWORD) == 235


# -- the counters ------------------------------------------------------------------------------


async def test_a_counter_starts_again_after_its_window_and_is_pruned_then(gateway, db):
    scope = f"test-{random.randrange(10**9)}"
    limits = Limits(window=1.0, per_user_address=1, per_address=100, per_user=100)
    throttle = Throttle(gateway.services.store, scope, replace(limits, base_delay=0.01))
    async with throttle.attempt("someone", "192.0.2.1") as attempt:
        await attempt.failed()
    with pytest.raises(TooManyAttempts) as refused:
        async with throttle.attempt("someone", "192.0.2.1"):
            pass
    assert refused.value.limit == "user_address" and 1 <= refused.value.retry_after <= 2
    await asyncio.sleep(1.2)  # past the window (the database's clock decides)
    async with throttle.attempt("someone", "192.0.2.1") as attempt:
        await attempt.succeeded()  # counted again from 1, so checked
    count = "SELECT count(*) FROM auth_attempts WHERE scope = $1"
    assert await db.fetchval(count, scope) == 3  # the pair, the address, the user
    await asyncio.sleep(1.2)
    await gateway.services.store.prune_attempts(limits.window)
    assert await db.fetchval(count, scope) == 0


# -- the cost of checking ----------------------------------------------------------------------


def slow_hash(passes: int = 2000) -> str:
    """A hash whose check takes seconds (argon2 with many passes; the stored digest does not
    matter, the check computes it in full and then differs)."""
    cheap = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash("x")
    return cheap.replace("t=1,", f"t={passes},")


async def test_console_and_relay_share_one_bounded_password_check_queue(
    make_gateway, tmp_path, browsers
):
    relay = await start_relay(make_gateway, tmp_path, trusted_proxies="127.0.0.1")
    gw = relay.gw
    console_users, relay_users = gw.runner.app[CONSOLE].users, gw.services.relay.users
    assert console_users.passwords is relay_users.passwords  # one CPU, one budget
    fast(gw, console_users.throttle)
    fast(gw, gw.services.relay.throttle)
    name, user = await add_console_user(gw, "operator"), await relay.user()
    tight = Passwords(concurrency=1, max_waiting=0)
    console_users.passwords = relay_users.passwords = tight
    busy = asyncio.create_task(tight.verify(slow_hash(), "y"))  # holds the only slot
    await asyncio.sleep(0)
    c, ip = browsers(gw, address()), address()
    status, page, headers = await login(c, name, PASSWORD)
    assert not busy.done()
    assert status == 503 and "当前正在校验的密码过多" in page and int(headers["Retry-After"]) > 0
    async with relay.session(source=ip) as smtp:
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await smtp.auth_plain(user, RELAY_PASSWORD)
    assert not busy.done()
    assert refused.value.code == 454 and "in progress" in refused.value.message
    assert (await busy) == (False, None)
    # nothing was counted against them: the right passwords get in at once
    assert (await login(c, name, PASSWORD))[0] == 303
    assert await auth(relay, ip, user, RELAY_PASSWORD) == 235


async def test_password_checks_beyond_the_queue_are_refused_not_queued():
    passwords = Passwords(concurrency=1, max_waiting=2)
    stored = await passwords.hash("the right password")
    results = await asyncio.gather(
        *(passwords.verify(stored, f"guess {i}") for i in range(8)), return_exceptions=True
    )
    busy = [r for r in results if isinstance(r, PasswordsBusy)]
    checked = [r for r in results if isinstance(r, tuple)]
    assert len(checked) == 3 and len(busy) == 5  # one running, two waiting; the rest refused
    assert all(ok is False for ok, _ in checked)
    assert (await passwords.verify(stored, "the right password"))[0]  # and then it works again
