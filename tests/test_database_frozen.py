"""A hung PostgreSQL never hangs clients: accepts give up at the accept deadline (503 + Retry-After,
SMTP 451), other reads at the database timeout, and a retry after a commit that landed late is
a replay, not a second copy.

PostgreSQL is "frozen" by a proxy that holds its bytes (tests.tcp_proxy), never by stopping the
real server, which other test runs share.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aiosmtplib
import pytest

import gateway.messages
from tests.browser_fixtures import add_console_user
from tests.gateway_fixtures import unique
from tests.relay_support import PASSWORD, message_ids, start_relay
from tests.tcp_proxy import TcpProxy
from tests.test_console_http import Client

# Generous against a loaded machine, and far below the old 60 s command timeout.
ANSWER_WITHIN = 20.0


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(database_url)
    proxy = await TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    proxy.url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    try:
        yield proxy
    finally:
        await proxy.close()


@pytest.fixture
def accounts_stay_cached(monkeypatch):
    """The accept path's account cache outlives the test, so a freeze hits the commit itself
    (the case where a commit can land after the client was told to try again)."""
    monkeypatch.setattr(gateway.messages, "ACCOUNT_CACHE_SECONDS", 3600.0)


def body(account: str, key: str) -> dict:
    return {
        "channel": "email",
        "account": account,
        "recipients": ["a@example.com"],
        "text": "during a freeze",
        "idempotency_key": key,
    }


async def post(gw, payload: dict) -> tuple[int, dict, dict]:
    async def call() -> tuple[int, dict, dict]:
        async with gw.http.post("/api/v1/messages", json=payload) as response:
            return response.status, dict(response.headers), await response.json()

    return await asyncio.wait_for(call(), ANSWER_WITHIN)


async def post_until_accepted(gw, payload: dict) -> tuple[int, dict, dict]:
    """As a client does after 503: try again (the deadline is short, the machine may be busy)."""
    for _ in range(10):
        status, headers, answer = await post(gw, payload)
        if status != 503:
            break
        await asyncio.sleep(0.5)
    return status, headers, answer


async def test_post_gives_up_at_the_deadline_and_its_retry_replays_the_commit_that_landed(
    make_gateway, proxy, db, accounts_stay_cached
):
    gw = await make_gateway(database_url=proxy.url, dispatch=False, accept_timeout_seconds=1)
    account = unique("sb")
    await gw.post("/api/v1/accounts", {"channel": "email", "name": account, "sandbox": True})
    assert (await post_until_accepted(gw, body(account, unique("warm"))))[0] == 202

    key = unique("k")
    proxy.freeze(requests=False)  # PostgreSQL commits; its answer comes too late
    started = time.monotonic()
    status, headers, answer = await post(gw, body(account, key))
    waited = time.monotonic() - started
    assert status == 503, answer
    assert headers["Retry-After"] and answer["error"]["code"] == "unavailable"
    assert "Idempotency-Key" in answer["error"]["message"]
    assert waited < ANSWER_WITHIN

    proxy.thaw()
    status, headers, answer = await post_until_accepted(gw, body(account, key))
    assert status == 202, answer
    assert headers.get("Idempotent-Replayed") == "true"  # the late commit, not a second one
    count = "SELECT count(*) FROM messages WHERE idempotency_key = $1"
    assert await db.fetchval(count, key) == 1


async def test_a_frozen_database_fails_accepts_and_reads_fast_and_loses_nothing(
    make_gateway, proxy, db
):
    gw = await make_gateway(
        database_url=proxy.url,
        dispatch=False,
        accept_timeout_seconds=1,
        db_timeout_seconds=2,
        db_pool_size=2,  # fewer connections than callers: some wait for one, and give up too
    )
    account = unique("sb")
    await gw.post("/api/v1/accounts", {"channel": "email", "name": account, "sandbox": True})
    status, _, warm = await post_until_accepted(gw, body(account, unique("warm")))
    assert status == 202, warm

    proxy.freeze()
    keys = [unique("k") for _ in range(3)]

    async def read(path: str) -> int:
        async with gw.http.get(path) as response:
            return response.status

    answers = await asyncio.wait_for(
        asyncio.gather(
            *(post(gw, body(account, k)) for k in keys),
            *(read(f"/api/v1/messages/{warm['id']}") for _ in range(3)),
            read("/api/v1/accounts"),
            read("/api/v1/health"),
        ),
        ANSWER_WITHIN,
    )
    assert [a[0] for a in answers[:3]] == [503, 503, 503], answers[:3]
    assert all(a[1]["Retry-After"] for a in answers[:3])
    assert answers[3:] == [503] * 5

    proxy.thaw()
    for k in keys:  # each was maybe committed, maybe not: the retry makes it exactly once
        status, _, answer = await post_until_accepted(gw, body(account, k))
        assert status == 202, answer
    count = "SELECT count(*) FROM messages WHERE idempotency_key = ANY($1::text[])"
    assert await db.fetchval(count, keys) == 3
    assert (await gw.get(f"/api/v1/messages/{warm['id']}"))[0] == 200


async def test_the_console_answers_503_in_its_language_instead_of_hanging(make_gateway, proxy):
    gw = await make_gateway(database_url=proxy.url, dispatch=False, db_timeout_seconds=2)
    console = Client(gw)
    try:
        assert await console.login(await add_console_user(gw, "readonly")) == 303
        proxy.freeze()
        status, page, _ = await asyncio.wait_for(console.get("/profile"), ANSWER_WITHIN)
        assert status == 503 and "数据库暂时不可用" in page
        proxy.thaw()
        assert (await console.get("/profile"))[0] == 200
    finally:
        await console.close()


def mail(subject: str, mid: str) -> bytes:
    return (
        f"From: app@example.com\r\nTo: ops@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{mid}@example.com>\r\n\r\nbody of {subject}\r\n"
    ).encode()


async def send_until_accepted(relay, data: bytes, user: str) -> str:
    """As a mail system does after 451: try again."""
    for _ in range(9):
        try:
            return (await relay.send(data, ["ops@example.com"], user=user))[1]
        except aiosmtplib.SMTPDataError as exc:
            if exc.code != 451:
                raise
        await asyncio.sleep(0.5)
    return (await relay.send(data, ["ops@example.com"], user=user))[1]


async def test_smtp_data_gets_451_at_the_deadline_and_the_retry_is_not_a_second_copy(
    make_gateway, proxy, db, tmp_path, accounts_stay_cached
):
    relay = await start_relay(
        make_gateway, tmp_path, database_url=proxy.url, dispatch=False, accept_timeout_seconds=1
    )
    user = await relay.user()
    await send_until_accepted(relay, mail(unique("warm"), unique("m")), user)

    subject, mid = unique("frozen"), unique("m")
    async with relay.session() as smtp:
        await smtp.login(user, PASSWORD)
        await smtp.mail("app@example.com")
        await smtp.rcpt("ops@example.com")
        proxy.freeze(requests=False)  # the commit lands; its answer is late
        with pytest.raises(aiosmtplib.SMTPDataError) as info:
            await asyncio.wait_for(smtp.data(mail(subject, mid)), ANSWER_WITHIN)
        assert info.value.code == 451 and "4.3.0" in info.value.message

    proxy.thaw()
    [message_id] = message_ids(await send_until_accepted(relay, mail(subject, mid), user))
    rows = await db.fetch("SELECT id::text FROM messages WHERE subject = $1", subject)
    assert [r["id"] for r in rows] == [message_id]  # the commit that landed, replayed
