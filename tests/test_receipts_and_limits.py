"""Provider callbacks (receipts), fake providers, and rate limits paced by deferral."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import msgspec
import pytest
from aiohttp import web

from gateway import hookimpl
from gateway.callbacks import CallbackRoute, FakeProvider, fake_providers_app
from gateway.channel import AccountRef, Channel, ContentKind, Outgoing, RateLimit, Sent
from gateway.model import Receipt
from gateway.plugins import Plugins
from gateway.ratelimit import LocalRateLimiter, RedisRateLimiter
from tests.gateway_fixtures import unique

REDIS_URL = "redis://127.0.0.1:6379/0"


class PacedAccount(msgspec.Struct):
    per_second: int = 5


class PacedOptions(msgspec.Struct, forbid_unknown_fields=True):
    style: str = "plain"


class PacedChannel(Channel):
    """Sends instantly, under a limit of ``per_second`` per second per account."""

    name = "paced"
    content_kinds = frozenset({ContentKind.TEXT})
    account_type = PacedAccount
    options_type = PacedOptions

    def __init__(self) -> None:
        self.sent: list[tuple[float, Outgoing]] = []

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        return [RateLimit(f"paced:{account.name}", account.config.per_second, 1.0)]

    async def send(self, account: AccountRef, outgoing: Outgoing):
        self.sent.append((time.monotonic(), outgoing))
        return Sent(provider_id=f"p-{outgoing.recipient}")


async def receipt_handler(request: web.Request, receipts) -> web.Response:
    if request.headers.get("X-Token") != "let-me-in":
        return web.json_response({"ok": False}, status=403)
    body = await request.json()
    matched = await receipts.record(
        "paced",
        [
            Receipt(
                provider_id=r["id"],
                delivered=r["ok"],
                code=r.get("code"),
                reason=r.get("reason"),
                detail={"raw": r},
            )
            for r in body
        ],
    )
    return web.json_response({"ok": True, "matched": matched})


async def fake_hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": request.match_info["who"]})


class PacedPlugin:
    def __init__(self) -> None:
        self.channel = PacedChannel()

    @hookimpl
    def msggate_channels(self):
        return [self.channel]

    @hookimpl
    def msggate_callback_routes(self):
        return [CallbackRoute("POST", "/paced/receipts", receipt_handler)]

    @hookimpl
    def msggate_fake_providers(self):
        def make_app() -> web.Application:
            app = web.Application()
            app.router.add_get("/hello/{who}", fake_hello)
            return app

        return [FakeProvider("paced", make_app, "a fake for tests")]


async def paced_gateway(make_gateway, per_second: int = 5):
    plugin = PacedPlugin()
    gw = await make_gateway(plugins=Plugins.load(extra=[("paced", plugin)]))
    account = unique("paced")
    status, body = await gw.post(
        "/api/v1/accounts",
        {"channel": "paced", "name": account, "config": {"per_second": per_second}},
    )
    assert status == 201, body
    return gw, plugin.channel, account


async def test_rate_limited_sends_are_paced_by_deferral_not_attempts(make_gateway):
    gw, channel, account = await paced_gateway(make_gateway, per_second=5)
    accepted = await gw.send(
        channel="paced", account=account, recipients=[f"r{i}" for i in range(12)], text="hi"
    )
    done = await gw.wait_done(accepted["id"], timeout=20)
    assert {d["status"] for d in done["deliveries"]} == {"sent"}
    assert all(d["attempts"] == 1 for d in done["deliveries"])  # deferral is not an attempt
    times = sorted(t for t, _ in channel.sent)
    assert len(times) == 12
    for i in range(len(times) - 5):  # never more than 5 in any one second
        assert times[i + 5] - times[i] >= 0.95, times
    kinds = {e["kind"] for d in done["deliveries"] for e in d["events"]}
    assert "deferred" in kinds


async def test_options_are_checked_on_accept_and_reach_the_channel(make_gateway):
    gw, channel, account = await paced_gateway(make_gateway)
    status, body = await gw.post(
        "/api/v1/messages",
        {
            "channel": "paced",
            "account": account,
            "recipients": ["x"],
            "text": "t",
            "options": {"style": 3},
        },
    )
    assert status == 422 and body["error"]["field"] == "options.style"
    status, body = await gw.post(
        "/api/v1/messages",
        {
            "channel": "email",
            "account": account,
            "recipients": ["a@example.com"],
            "text": "t",
            "options": {"style": "bold"},
        },
    )
    assert status == 422
    accepted = await gw.send(
        channel="paced",
        account=account,
        recipients=["x"],
        text="t",
        options={"style": "bold"},
        template="TPL_1",
    )
    await gw.wait_done(accepted["id"])
    [(_, outgoing)] = [s for s in channel.sent if s[1].message_id == accepted["id"]]
    assert outgoing.options == PacedOptions(style="bold") and outgoing.template == "TPL_1"


async def test_receipt_callback_marks_deliveries_delivered_or_undelivered(make_gateway):
    gw, _, account = await paced_gateway(make_gateway)
    accepted = await gw.send(channel="paced", account=account, recipients=["ok", "bad"], text="hi")
    await gw.wait_done(accepted["id"])
    async with aiohttp.ClientSession() as anonymous:
        url = gw.url + "/callbacks/paced/receipts"
        async with anonymous.post(url, json=[{"id": "p-ok", "ok": True}]) as response:
            assert response.status == 403  # the route checks its caller itself
        async with anonymous.post(
            url,
            headers={"X-Token": "let-me-in"},
            json=[
                {"id": "p-ok", "ok": True},
                {"id": "p-bad", "ok": False, "code": "IS_CLOSE", "reason": "phone switched off"},
                {"id": "p-unknown", "ok": True},
            ],
        ) as response:
            assert response.status == 200
            assert (await response.json())["matched"] == 2
    done = await gw.wait_done(accepted["id"], statuses=frozenset({"delivered", "undelivered"}))
    by_rcpt = {d["recipient"]: d for d in done["deliveries"]}
    assert by_rcpt["ok"]["status"] == "delivered"
    bad = by_rcpt["bad"]
    assert bad["status"] == "undelivered" and bad["last_code"] == "IS_CLOSE"
    assert bad["last_error"] == "phone switched off"
    assert bad["events"][-1]["kind"] == "receipt"


async def test_fake_providers_are_mounted_under_their_name():
    plugins = Plugins.load(extra=[("paced", PacedPlugin())], entry_points=False)
    fakes = plugins.fake_providers()
    assert [f.name for f in fakes] == ["paced"]
    runner = web.AppRunner(fake_providers_app(fakes))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/paced/hello/dingtalk") as response,
        ):
            assert await response.json() == {"hello": "dingtalk"}
    finally:
        await runner.cleanup()


async def test_local_limiter_reserves_a_sliding_window():
    limiter = LocalRateLimiter()
    waits = [await limiter.reserve("k", 3, 10.0) for _ in range(7)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 9.9 < waits[3] <= 10.0 and 9.9 < waits[5] <= 10.0
    assert 19.9 < waits[6] <= 20.0


async def _slot(limiter, key: str, limit: int, window: float) -> tuple[float, float]:
    """When (on this clock) the reservation may go, and how long the call took: slot times
    compare correctly however slow the machine is, to within the calls' own durations."""
    start = time.monotonic()
    wait = await limiter.reserve(key, limit, window)
    end = time.monotonic()
    return end + wait, end - start


async def test_redis_limiter_is_shared_between_nodes():
    key = unique("rl")
    a, b = RedisRateLimiter(REDIS_URL), RedisRateLimiter(REDIS_URL)
    try:
        slots = [await _slot(node, key, 2, 5.0) for node in (a, b, a, b)]
    finally:
        await a.close()
        await b.close()
    (s0, d0), (s1, d1), (s2, d2), (s3, d3) = slots
    assert abs(s1 - s0) <= d0 + d1 + 0.01  # both go at once: 2 per window
    assert abs(s2 - s0 - 5.0) <= d0 + d2 + 0.01  # the third waits for the first's window
    assert abs(s3 - s1 - 5.0) <= d1 + d3 + 0.01


async def test_redis_outage_falls_back_to_local_limits(caplog):
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    try:
        waits = [await limiter.reserve("k", 1, 5.0) for _ in range(2)]
    finally:
        await limiter.close()
    assert waits[0] == 0.0 and 4.9 < waits[1] <= 5.0
    assert "limits are per node now" in caplog.text


@pytest.fixture(autouse=True, scope="module")
def redis_is_up():
    """These tests need the real Redis: fail (never skip) when it is not there."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is required at {REDIS_URL}: {exc}", pytrace=False)


async def test_concurrent_reservations_never_exceed_the_limit():
    limiter = RedisRateLimiter(REDIS_URL)
    key = unique("rl")
    try:
        slots = await asyncio.gather(*[_slot(limiter, key, 4, 2.0) for _ in range(12)])
    finally:
        await limiter.close()
    slots.sort()
    for (early, d_early), (late, d_late) in zip(slots, slots[4:], strict=False):
        # slot times cross Redis as text; each is known to within its call's duration
        assert late - early >= 2.0 - d_early - d_late - 0.02


async def test_local_limiter_forgets_idle_windows(monkeypatch):
    limiter = LocalRateLimiter()
    monkeypatch.setattr(LocalRateLimiter, "MAX_KEYS", 10)
    for i in range(10):
        await limiter.reserve(f"user-{i}", 1, 0.01)
    await asyncio.sleep(0.05)
    await limiter.reserve("fresh", 1, 60.0)
    await limiter.reserve("another", 1, 60.0)
    assert set(limiter._windows) == {"fresh", "another"}


async def test_a_receipt_that_comes_before_the_send_is_recorded_still_counts(make_gateway, db):
    gw, _, account = await paced_gateway(make_gateway)
    # The provider's receipt for "p-early" arrives first: nothing matches it yet ...
    matched = await gw.services.receipts.record(
        "paced",
        [
            Receipt(
                provider_id="p-early",
                delivered=False,
                code="DELIVRD-NO",
                reason="number unreachable",
            )
        ],
    )
    assert matched == 0
    assert (
        await db.fetchval("SELECT count(*) FROM unmatched_receipts WHERE provider_id = 'p-early'")
        == 1
    )
    # ... then the send is recorded, and the waiting receipt takes effect.
    accepted = await gw.send(channel="paced", account=account, recipients=["early"], text="t")
    done = await gw.wait_done(accepted["id"], statuses=frozenset({"undelivered"}))
    [d] = done["deliveries"]
    assert d["last_error"] == "number unreachable"
    assert [e["kind"] for e in d["events"]][-2:] == ["sent", "receipt"]
    assert (
        await db.fetchval("SELECT count(*) FROM unmatched_receipts WHERE provider_id = 'p-early'")
        == 0
    )


async def test_a_receipt_for_one_account_never_settles_another_accounts_delivery(make_gateway):
    gw, _, first = await paced_gateway(make_gateway)
    second = unique("paced")
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "paced", "name": second, "config": {"per_second": 5}}
    )
    assert status == 201, body
    # the paced provider ids are p-<recipient>: both accounts' deliveries get "p-same"
    sent = {}
    for account in (first, second):
        accepted = await gw.send(channel="paced", account=account, recipients=["same"], text="t")
        sent[account] = accepted["id"]
        await gw.wait_done(accepted["id"])
    receipt = Receipt(provider_id="p-same", delivered=True, account=first)
    assert await gw.services.receipts.record("paced", [receipt]) == 1
    first_done = await gw.wait_done(sent[first], statuses=frozenset({"delivered"}))
    assert first_done["deliveries"][0]["provider_id"] == "p-same"
    _, second_now = await gw.get(f"/api/v1/messages/{sent[second]}")
    assert second_now["deliveries"][0]["status"] == "sent"
    assert second_now["deliveries"][0]["provider_id"] == "p-same"


async def test_an_early_receipt_for_one_account_waits_for_that_accounts_send(make_gateway):
    gw, _, first = await paced_gateway(make_gateway)
    second = unique("paced")
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "paced", "name": second, "config": {"per_second": 5}}
    )
    assert status == 201, body
    early = Receipt(provider_id="p-scoped-early", delivered=True, account=first)
    assert await gw.services.receipts.record("paced", [early]) == 0
    # the other account's send with the same provider id is recorded: the receipt keeps waiting
    other = await gw.send(channel="paced", account=second, recipients=["scoped-early"], text="t")
    other_done = await gw.wait_done(other["id"])
    await asyncio.sleep(0.2)
    _, other_now = await gw.get(f"/api/v1/messages/{other['id']}")
    assert other_done["deliveries"][0]["provider_id"] == "p-scoped-early"
    assert other_now["deliveries"][0]["status"] == "sent"
    # ... and takes effect on its own account's send
    own = await gw.send(channel="paced", account=first, recipients=["scoped-early"], text="t")
    own_done = await gw.wait_done(own["id"], statuses=frozenset({"delivered"}))
    assert [e["kind"] for e in own_done["deliveries"][0]["events"]][-2:] == ["sent", "receipt"]
