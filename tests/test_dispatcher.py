"""The dispatcher with a scripted channel: retries, backoff, permanent failures, leases."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import msgspec

from gateway import hookimpl
from gateway.backoff import retry_delay
from gateway.channel import AccountRef, Channel, ContentKind, Failed, Outgoing, Retry, Sent
from gateway.plugins import Plugins
from tests.gateway_fixtures import unique


class ScriptAccount(msgspec.Struct):
    token: str = "t"


class ScriptedChannel(Channel):
    """Answers each recipient from a script: a list of outcomes, one per attempt."""

    name = "scripted"
    content_kinds = frozenset({ContentKind.TEXT})
    account_type = ScriptAccount

    def __init__(self) -> None:
        self.script: dict[str, list] = {}
        self.calls: list[tuple[str, int]] = []

    async def send(self, account: AccountRef, outgoing: Outgoing):
        self.calls.append((outgoing.recipient, outgoing.attempt))
        plan = self.script.get(outgoing.recipient, [Sent(provider_id="p1")])
        step = plan[min(outgoing.attempt, len(plan)) - 1]
        if isinstance(step, Exception):
            raise step
        if step == "hang":
            await asyncio.sleep(3600)
        return step


class ScriptedPlugin:
    def __init__(self) -> None:
        self.channel = ScriptedChannel()

    @hookimpl
    def msggate_channels(self):
        return [self.channel]


async def setup(make_gateway, **settings):
    plugin = ScriptedPlugin()
    gw = await make_gateway(plugins=Plugins.load(extra=[("scripted", plugin)]), **settings)
    account = unique("scripted")
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "scripted", "name": account, "config": {"token": "x"}}
    )
    assert status == 201, body
    return gw, plugin.channel, account


def msg(account: str, *recipients: str) -> dict:
    return {
        "channel": "scripted",
        "account": account,
        "recipients": list(recipients),
        "text": "hello",
    }


async def test_temporary_failure_is_retried_then_sent(make_gateway):
    gw, channel, account = await setup(make_gateway)
    channel.script["r1"] = [Retry(reason="busy", code="451"), Sent(provider_id="ok-2")]
    accepted = await gw.send(**msg(account, "r1"))
    done = await gw.wait_done(accepted["id"])
    [d] = done["deliveries"]
    assert d["status"] == "sent" and d["attempts"] == 2 and d["provider_id"] == "ok-2"
    kinds = [e["kind"] for e in d["events"]]
    assert kinds == ["accepted", "attempt", "retrying", "attempt", "sent"]
    retry = d["events"][2]["detail"]
    assert retry["reason"] == "busy" and retry["code"] == "451" and "next_attempt_at" in retry


async def test_permanent_failure_is_not_retried_and_keeps_the_reason(make_gateway):
    gw, channel, account = await setup(make_gateway)
    channel.script["bad"] = [Failed(reason="no such user", code="550")]
    accepted = await gw.send(**msg(account, "bad"))
    [d] = (await gw.wait_done(accepted["id"]))["deliveries"]
    assert d["status"] == "failed" and d["attempts"] == 1
    assert d["last_error"] == "no such user" and d["last_code"] == "550"
    assert channel.calls.count(("bad", 1)) == 1 and ("bad", 2) not in channel.calls


async def test_retries_stop_at_the_attempt_limit(make_gateway):
    gw, channel, account = await setup(make_gateway, max_attempts=3)
    channel.script["flaky"] = [Retry(reason="still down")] * 5
    accepted = await gw.send(**msg(account, "flaky"))
    [d] = (await gw.wait_done(accepted["id"]))["deliveries"]
    assert d["status"] == "failed" and d["attempts"] == 3
    assert d["last_error"].startswith("gave up after 3 attempts: still down")


async def test_provider_retry_after_is_honoured(make_gateway):
    gw, channel, account = await setup(make_gateway)
    channel.script["slow"] = [Retry(reason="rate limited", after=1.5), Sent()]
    accepted = await gw.send(**msg(account, "slow"))
    [d] = (await gw.wait_done(accepted["id"]))["deliveries"]
    retried = dt.datetime.fromisoformat(d["events"][2]["at"])
    second = dt.datetime.fromisoformat(d["events"][3]["at"])
    assert (second - retried).total_seconds() >= 1.4


async def test_a_channel_that_raises_is_retried_not_lost(make_gateway):
    gw, channel, account = await setup(make_gateway)
    channel.script["boom"] = [RuntimeError("plugin bug"), Sent()]
    accepted = await gw.send(**msg(account, "boom"))
    [d] = (await gw.wait_done(accepted["id"]))["deliveries"]
    assert d["status"] == "sent" and d["attempts"] == 2
    assert "plugin bug" in d["events"][2]["detail"]["reason"]


async def test_expired_lease_is_taken_over_by_another_node(make_gateway, db):
    """A node that dies mid-send leaves a 'sending' row; once its lease ends it is sent again."""
    gw, _channel, account = await setup(make_gateway, lease_seconds=1.0)
    accepted = await gw.send(**msg(account, "r"))
    await gw.wait_done(accepted["id"])
    delivery_id = uuid.UUID(accepted["deliveries"][0]["id"])
    # Simulate a dead node: the row is leased to it, the lease has run out.
    await db.execute(
        "UPDATE deliveries SET status='sending', leased_by='dead:1', attempts=1,"
        " due_at=now() - interval '1 second' WHERE id=$1",
        delivery_id,
    )
    await db.execute("SELECT pg_notify('msggate_due', '')")
    done = await gw.wait_done(accepted["id"])
    assert done["deliveries"][0]["attempts"] == 2


async def test_many_deliveries_are_sent_exactly_by_one_of_two_nodes(make_gateway, db):
    a, channel_a, account = await setup(make_gateway)
    b = await make_gateway(plugins=Plugins.load(extra=[("scripted", ScriptedPlugin())]))
    channel_b = b.services.plugins.channel("scripted")
    recipients = [f"r{i}" for i in range(300)]
    accepted = await a.send(**msg(account, *recipients))
    done = await a.wait_done(accepted["id"], timeout=30)
    assert {d["status"] for d in done["deliveries"]} == {"sent"}
    sent_by = [r for r, _ in channel_a.calls + channel_b.calls if r in recipients]
    assert sorted(sent_by) == sorted(recipients)  # each once: no double claims


def test_backoff_grows_and_respects_the_provider():
    delays = [retry_delay(n, 5, 3600) for n in range(1, 8)]
    for n, d in enumerate(delays, start=1):
        step = min(3600, 5 * 2 ** (n - 1))
        assert step / 2 <= d <= step
    assert retry_delay(1, 5, 3600, provider_after=120) == 120
    assert retry_delay(30, 5, 60) <= 60


async def test_message_for_an_account_deleted_meanwhile_fails_with_the_reason(make_gateway):
    # No foreign key catches this (migration 0007): a node whose account cache still held the
    # account accepts the message; the dispatcher then finds no account and says so.
    gw, channel, account = await setup(make_gateway, dispatch=False)
    accepted = await gw.send(**msg(account, "r1"))
    async with gw.services.store.pool.acquire() as conn:
        await conn.execute("DELETE FROM accounts WHERE name = $1", account)
    dispatcher = await make_gateway(plugins=Plugins.load(extra=[("scripted", ScriptedPlugin())]))
    done = await dispatcher.wait_done(accepted["id"])
    [d] = done["deliveries"]
    assert d["status"] == "failed" and d["last_error"] == f"account {account!r} was deleted"
    assert done["account"] == account and channel.calls == []
