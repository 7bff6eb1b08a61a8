"""Outbound calls end to end: account, message, call, and the call result pushed back."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets

import aiohttp
import pytest

from gateway.plugins import Plugins
from plugins.aliyun.fake import Fault
from plugins.outbound import plugin as outbound_plugin
from plugins.outbound.channel import OutboundChannel
from tests.gateway_fixtures import RunningGateway, unique
from tests.outbound_fixtures import (
    CALLER,
    COMPANY,
    KEY_ID,
    KEY_SECRET,
    SCRIPT,
    WRONG_SECRET,
    RunningOutbound,
)

RECEIVED = frozenset({"delivered", "undelivered"})


def plugins() -> Plugins:
    return Plugins.load(extra=[("outbound", outbound_plugin)], entry_points=False)


def account_config(outbound: RunningOutbound, **overrides) -> dict:
    config = {
        "company_name": COMPANY,
        "access_key_id": KEY_ID,
        "access_key_secret": KEY_SECRET,
        "caller_number": CALLER,
        "endpoint": outbound.url,
    }
    return {**config, **overrides}


async def outbound_gateway(
    make_gateway, outbound: RunningOutbound, api: str = "dyvms"
) -> tuple[RunningGateway, str]:
    """A gateway with the outbound plugin, an account on the fake, receipts pushed back to it."""
    gw = await make_gateway(plugins=plugins())
    account, token = unique("outbound"), secrets.token_hex(16)
    status, body = await gw.post(
        "/api/v1/accounts",
        {
            "channel": "outbound",
            "name": account,
            "config": account_config(outbound, api=api, receipt_token=token),
        },
    )
    assert status == 201, body
    assert KEY_SECRET not in json.dumps(body) and token not in json.dumps(body)
    outbound.fake.receipt_url = f"{gw.url}/callbacks/outbound/aliyun/{account}/{token}"
    outbound.fake.receipt_delay = 0.5  # a call takes a while: its result comes after "sent"
    return gw, account


def test_the_outbound_entry_point_provides_the_channel():
    assert isinstance(Plugins.load().channel("outbound"), OutboundChannel)


async def test_account_with_a_wrong_secret_is_refused_naming_the_field(
    make_gateway, outbound: RunningOutbound
):
    gw = await make_gateway(plugins=plugins(), dispatch=False)
    status, body = await gw.post(
        "/api/v1/accounts",
        {
            "channel": "outbound",
            "name": unique("outbound"),
            "config": account_config(outbound, access_key_secret=WRONG_SECRET),
        },
    )
    assert status == 422 and body["error"]["field"] == "config.access_key_secret", body
    assert "SignatureDoesNotMatch" in body["error"]["message"]
    assert WRONG_SECRET not in json.dumps(body) and "string to sign" not in json.dumps(body)


@pytest.mark.parametrize("api", ["dyvms", "aiccs"])
async def test_call_results_come_back_as_delivered_or_undelivered(
    make_gateway, outbound: RunningOutbound, api
):
    gw, account = await outbound_gateway(make_gateway, outbound, api)
    outbound.fake.results["13900000001"] = "200002"  # busy
    accepted = await gw.send(
        channel="outbound",
        account=account,
        recipients=["13900000000", "13900000001"],
        template=SCRIPT,
        variables={"name": "值班员"},
        options={"early_media_asr": True},
    )
    done = await gw.wait_done(accepted["id"], statuses=RECEIVED)
    by_number = {d["recipient"]: d for d in done["deliveries"]}
    answered, busy = by_number["13900000000"], by_number["13900000001"]
    assert answered["status"] == "delivered" and answered["units"] == 1
    assert answered["provider_id"] == outbound.fake.calls_to("13900000000")[0].provider_id
    assert busy["status"] == "undelivered" and busy["last_code"] == "200002"
    assert busy["last_error"].startswith("busy")
    assert busy["events"][-1]["kind"] == "receipt"
    assert all(c.variables == {"name": "值班员"} for c in outbound.fake.calls)
    assert [status for status, _ in outbound.fake.pushes] == [200, 200]


async def test_pushes_with_a_wrong_token_or_account_change_nothing(
    make_gateway, outbound: RunningOutbound
):
    gw, account = await outbound_gateway(make_gateway, outbound)
    real_url = outbound.fake.receipt_url
    outbound.fake.receipt_url = None  # hold the real receipts back
    accepted = await gw.send(
        channel="outbound",
        account=account,
        recipients=["13900000000"],
        template=SCRIPT,
        variables={"name": "x"},
    )
    [delivery] = (await gw.wait_done(accepted["id"]))["deliveries"]
    forged = [
        {
            "status_code": "200000",
            "smart_status_code": "ANSWERED",
            "out_id": f"ALICOM_SMART_SAAS^{delivery['provider_id']}^1",
            "callee": "13900000000",
        }
    ]
    async with aiohttp.ClientSession() as anonymous:
        for url in (
            real_url.rsplit("/", 1)[0] + "/" + "0" * 32,
            f"{gw.url}/callbacks/outbound/aliyun/nobody/{'0' * 32}",
        ):
            async with anonymous.post(url, json=forged) as response:
                assert response.status == 403
        async with anonymous.post(real_url, json=forged) as response:
            assert response.status == 200 and (await response.json())["code"] == 0
    [delivery] = (await gw.wait_done(accepted["id"], statuses=RECEIVED))["deliveries"]
    assert delivery["status"] == "delivered"


async def test_throttled_call_is_retried_no_sooner_than_the_callees_limit_allows(
    make_gateway, outbound: RunningOutbound
):
    gw, account = await outbound_gateway(make_gateway, outbound)
    outbound.fake.gateway.inject(Fault(code="Throttling.User", action="BatchRobotSmartCall"))
    accepted = await gw.send(
        channel="outbound",
        account=account,
        recipients=["13900000000"],
        template=SCRIPT,
        variables={"name": "x"},
    )
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # the retry is due in ~1 s, then deferred: one call a minute per callee
        _, body = await gw.get(f"/api/v1/messages/{accepted['id']}")
        kinds = [e["kind"] for e in body["deliveries"][0]["events"]]
        if "deferred" in kinds or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.1)
    events = body["deliveries"][0]["events"]
    retry = next(e for e in events if e["kind"] == "retrying")
    deferred = next(e for e in events if e["kind"] == "deferred")
    assert retry["detail"]["code"] == "Throttling.User"
    assert ":callee:" in deferred["detail"]["rate_limit"]
    attempted = dt.datetime.fromisoformat(events[1]["at"])
    until = dt.datetime.fromisoformat(deferred["detail"]["until"])
    assert 55 < (until - attempted).total_seconds() <= 61
    assert outbound.fake.calls == []


async def test_bad_messages_are_refused_at_accept_or_failed_with_a_reason(
    make_gateway, outbound: RunningOutbound
):
    gw, account = await outbound_gateway(make_gateway, outbound)
    message = {"channel": "outbound", "account": account, "variables": {"name": "x"}}
    status, body = await gw.post(
        "/api/v1/messages", {**message, "recipients": ["1390000000"], "template": SCRIPT}
    )
    assert status == 422 and body["error"]["field"] == "recipients[0]", body
    assert "1390000000" in body["error"]["message"]
    status, body = await gw.post(
        "/api/v1/messages",
        {**message, "recipients": ["13900000000"], "options": {"task_name": "x" * 31}},
    )
    assert status == 422 and body["error"]["field"] == "options.task_name", body
    for change, field in (
        ({}, "template"),  # no script: refused at accept, not failed later
        ({"template": "script-1"}, "template"),  # the script id is a number
        ({"template": SCRIPT, "variables": {"name": ["x"]}}, "variables"),
    ):
        status, body = await gw.post(
            "/api/v1/messages", {**message, "recipients": ["+86 139 0000 0000"], **change}
        )
        assert status == 422 and body["error"]["field"] == field, body
    assert outbound.fake.calls == []
