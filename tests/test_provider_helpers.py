"""Shared provider helpers: the token cache and classified HTTP calls, against a real server."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from gateway.channel import Failed, Retry
from gateway.httpcall import Answer, call_json
from gateway.tokens import Token, TokenCache


async def test_token_is_fetched_once_for_concurrent_senders():
    cache = TokenCache()
    calls = 0

    async def fetch() -> Token:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return Token(f"t{calls}", 7200)

    tokens = await asyncio.gather(*[cache.get("app", fetch) for _ in range(20)])
    assert set(tokens) == {"t1"} and calls == 1


async def test_refused_token_is_refetched_and_a_stale_invalidate_is_ignored():
    cache = TokenCache()
    values = iter(["old", "new"])

    async def fetch() -> Token:
        return Token(next(values), 7200)

    assert await cache.get("app", fetch) == "old"
    cache.invalidate("app", "old")
    assert await cache.get("app", fetch) == "new"
    cache.invalidate("app", "old")  # a late report about the old token changes nothing
    assert await cache.get("app", fetch) == "new"


async def test_token_is_refreshed_before_it_expires():
    cache = TokenCache(margin=300)
    count = 0

    async def fetch() -> Token:
        nonlocal count
        count += 1
        return Token(f"t{count}", 0.2)  # shorter than the margin: half its life is used

    assert await cache.get("k", fetch) == "t1"
    await asyncio.sleep(0.15)
    assert await cache.get("k", fetch) == "t2"


@pytest.fixture
async def provider():
    """A real HTTP server answering per path: ok, 500, 429, slow, not JSON."""

    async def ok(request):
        return web.json_response({"errcode": 0})

    async def broken(request):
        return web.Response(status=503)

    async def limited(request):
        return web.Response(status=429, headers={"Retry-After": "7"})

    async def slow(request):
        await asyncio.sleep(2)
        return web.json_response({})

    async def html(request):
        return web.Response(text="<html>gateway error</html>")

    app = web.Application()
    for path, handler in (
        ("/ok", ok),
        ("/500", broken),
        ("/429", limited),
        ("/slow", slow),
        ("/html", html),
    ):
        app.router.add_post(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_http_answers_are_classified(provider):
    async with aiohttp.ClientSession() as session:
        ok = await call_json(session, "POST", provider + "/ok", idempotent=False)
        assert ok == Answer(200, {"errcode": 0}, ok.headers)
        five = await call_json(session, "POST", provider + "/500", idempotent=False)
        assert isinstance(five, Retry) and five.code == "503"
        limited = await call_json(session, "POST", provider + "/429", idempotent=False)
        assert isinstance(limited, Retry) and limited.after == 7.0
        html = await call_json(session, "POST", provider + "/html", idempotent=True)
        assert isinstance(html, Retry) and "not JSON" in html.reason


async def test_timeout_after_sending_is_unknown_for_sends_and_retry_for_reads(provider):
    async with aiohttp.ClientSession() as session:
        send = await call_json(session, "POST", provider + "/slow", idempotent=False, timeout=0.3)
        read = await call_json(session, "POST", provider + "/slow", idempotent=True, timeout=0.3)
    assert isinstance(send, Failed) and send.code == "unknown"
    assert isinstance(read, Retry) and read.code == "timeout"


async def test_refused_connection_is_retried():
    async with aiohttp.ClientSession() as session:
        outcome = await call_json(session, "POST", "http://127.0.0.1:1/x", idempotent=False)
    assert isinstance(outcome, Retry) and outcome.code == "connect"


def test_reasons_never_carry_url_query_strings():
    from gateway.httpcall import describe

    exc = aiohttp.ClientError("failed https://oapi.example/robot/send?access_token=s3cret&x=1")
    assert "s3cret" not in describe(exc) and "robot/send?…" in describe(exc)


async def test_a_failed_fetch_is_shared_by_the_senders_waiting_on_it():
    cache = TokenCache()
    calls = 0

    async def fetch() -> Token:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise PermissionError("40001 invalid secret")

    results = await asyncio.gather(
        *[cache.get("app", fetch) for _ in range(10)], return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(r, PermissionError) for r in results)
    with pytest.raises(PermissionError):  # a later send tries again
        await cache.get("app", fetch)
    assert calls == 2
