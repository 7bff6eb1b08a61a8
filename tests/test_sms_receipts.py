"""SMS end to end through a real gateway and the fake Alibaba Cloud SMS: accounts validated on
save, messages sent with a valid signature, faults retried, and SmsReport pushes to the
callback route marking deliveries delivered / undelivered by BizId and number."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway.plugins import Plugins
from gateway.testing import serving
from plugins.aliyun.fake import Fault
from plugins.sms import plugin as sms_plugin
from plugins.sms.fake import FakeSms, make_app
from tests.aliyun_support import Product
from tests.gateway_fixtures import unique

KEY_ID = "LTAI5tSmsReceipts01"
SECRET = "sms-receipts-secret-0123456"
TOKEN = "sms-receipt-token-0123456789"
SIGN = "msggate测试"
TEMPLATE = "SMS_200000001"  # ${name}您好，${content}
OK_PHONE, BAD_PHONE = "13800138001", "13800138002"


def account_config(url: str, **overrides: Any) -> dict[str, Any]:
    config = {
        "access_key_id": KEY_ID,
        "access_key_secret": SECRET,
        "sign_name": SIGN,
        "endpoint": url,
        "receipt_token": TOKEN,
        "templates": {TEMPLATE: "${name}您好，${content}"},
    }
    config.update(overrides)
    return config


@pytest.fixture
async def setup(make_gateway) -> AsyncIterator[Product]:
    fake = FakeSms(keys={KEY_ID: SECRET}, report_schedule=(0.05, 0.05, 0.05))
    async with serving(make_app(fake)) as url:
        gw = await make_gateway(plugins=Plugins.load(extra=[("sms", sms_plugin)]))
        name = unique("sms")
        status, body = await gw.post(
            "/api/v1/accounts",
            {"channel": "sms", "name": name, "config": account_config(url)},
        )
        assert status == 201, body
        assert body["config"]["access_key_secret"] != SECRET
        assert body["config"]["receipt_token"] != TOKEN
        variables = {"name": "值班员", "content": "订单服务响应超时"}
        yield Product("sms", fake, url, gw, name, TOKEN, TEMPLATE, variables)


async def test_receipts_mark_deliveries_delivered_or_undelivered_with_the_carriers_reason(setup):
    done = await setup.send(OK_PHONE, BAD_PHONE)
    sent = {d["recipient"]: d for d in done["deliveries"]}
    assert {d["status"] for d in sent.values()} == {"sent"}
    by_phone = {s.phone: s for s in setup.fake.sent}
    assert sent[OK_PHONE]["provider_id"] == by_phone[OK_PHONE].biz_id
    assert by_phone[OK_PHONE].text == "【msggate测试】值班员您好，订单服务响应超时"
    assert sent[OK_PHONE]["units"] == 1

    setup.fake.undeliverable[BAD_PHONE] = ("DB:0101", "手机号码错误")
    assert await setup.fake.push_reports(setup.callback()) == 200

    final = await setup.gw.wait_done(done["id"], statuses=frozenset({"delivered", "undelivered"}))
    by_rcpt = {d["recipient"]: d for d in final["deliveries"]}
    assert by_rcpt[OK_PHONE]["status"] == "delivered"
    bad = by_rcpt[BAD_PHONE]
    assert bad["status"] == "undelivered" and bad["last_code"] == "DB:0101"
    assert bad["last_error"] == "手机号码错误"
    receipt = bad["events"][-1]
    assert receipt["kind"] == "receipt" and receipt["detail"]["sms_size"] == "1"


async def test_receipt_must_name_the_delivery_by_biz_id_and_number(setup):
    done = await setup.send(OK_PHONE)
    biz_id = done["deliveries"][0]["provider_id"]
    forged = [{"phone_number": BAD_PHONE, "biz_id": biz_id, "success": False, "err_code": "X"}]
    async with aiohttp.ClientSession() as http, http.post(setup.callback(), json=forged) as resp:
        assert resp.status == 200 and (await resp.json())["code"] == 0
    again = await setup.gw.get(f"/api/v1/messages/{done['id']}")
    assert again[1]["deliveries"][0]["status"] == "sent"  # another number: not this delivery


async def test_push_to_one_accounts_callback_cannot_settle_another_accounts_delivery(setup):
    other = unique("sms-other")
    other_token = "sms-other-receipt-token-0123"
    status, body = await setup.gw.post(
        "/api/v1/accounts",
        {
            "channel": "sms",
            "name": other,
            "config": account_config(setup.url, receipt_token=other_token),
        },
    )
    assert status == 201, body
    accepted = await setup.gw.send(
        channel="sms",
        account=other,
        recipients=[OK_PHONE],
        template=TEMPLATE,
        variables={"name": "值班员", "content": "订单服务响应超时"},
    )
    done = await setup.gw.wait_done(accepted["id"])
    biz_id = done["deliveries"][0]["provider_id"]
    report = [{"phone_number": OK_PHONE, "biz_id": biz_id, "success": False, "err_code": "X"}]
    async with aiohttp.ClientSession() as http:
        # verified for this setup's account (its own token), naming the other account's send
        async with http.post(setup.callback(), json=report) as resp:
            assert resp.status == 200 and (await resp.json())["code"] == 0
        _, again = await setup.gw.get(f"/api/v1/messages/{done['id']}")
        assert again["deliveries"][0]["status"] == "sent"
        # the other account's own push settles it
        async with http.post(setup.callback(other_token, account=other), json=report) as resp:
            assert resp.status == 200
    final = await setup.gw.wait_done(done["id"], statuses=frozenset({"undelivered"}))
    assert final["deliveries"][0]["last_code"] == "X"


async def test_push_with_a_wrong_token_is_refused_and_retried_on_the_schedule(setup):
    done = await setup.send(OK_PHONE)
    status = await setup.fake.push_reports(setup.callback(token="not-the-token-at-all"))
    assert status == 403
    for _ in range(100):
        if len(setup.fake.reports.pushes) == 4:
            break
        await asyncio.sleep(0.05)
    assert [p.status for p in setup.fake.reports.pushes] == [403] * 4  # first + 3 retries
    assert [p.attempt for p in setup.fake.reports.pushes] == [1, 2, 3, 4]
    again = await setup.gw.get(f"/api/v1/messages/{done['id']}")
    assert again[1]["deliveries"][0]["status"] == "sent"


async def test_push_for_an_account_without_a_receipt_token_is_refused(setup):
    name = unique("sms-notoken")
    config = account_config(setup.url, receipt_token=None)
    status, body = await setup.gw.post(
        "/api/v1/accounts", {"channel": "sms", "name": name, "config": config}
    )
    assert status == 201, body
    reports = [{"phone_number": OK_PHONE, "biz_id": "1^0", "success": True}]
    async with aiohttp.ClientSession() as http:
        for token in (TOKEN, "x" * 20):
            async with http.post(setup.callback(token, account=name), json=reports) as resp:
                assert resp.status == 403


async def test_push_for_an_unknown_account_is_refused(setup):
    reports = [{"phone_number": OK_PHONE, "biz_id": "1^0", "success": True}]
    async with (
        aiohttp.ClientSession() as http,
        http.post(setup.callback(account="no-such-account"), json=reports) as resp,
    ):
        assert resp.status == 403


async def test_push_that_is_not_a_json_array_is_a_bad_request(setup):
    async with (
        aiohttp.ClientSession() as http,
        http.post(setup.callback(), data=b"not json") as resp,
    ):
        assert resp.status == 400


async def test_account_with_a_wrong_secret_is_refused_naming_the_field(setup):
    status, body = await setup.gw.post(
        "/api/v1/accounts",
        {
            "channel": "sms",
            "name": unique("sms-bad"),
            "config": account_config(setup.url, access_key_secret="wrong-secret-012345"),
        },
    )
    assert status == 422, body
    assert body["error"]["field"] == "config.access_key_secret"
    assert "SignatureDoesNotMatch" in body["error"]["message"]


async def test_recipient_with_country_code_is_accepted_and_sent_as_the_bare_number(setup):
    done = await setup.send("+86 138-0013-8001")
    (delivery,) = done["deliveries"]
    assert delivery["recipient"] == OK_PHONE and delivery["status"] == "sent"
    (sms,) = setup.fake.sent
    assert sms.phone == OK_PHONE
    (rpc,) = [r for r in setup.fake.gateway.received if r.action == "SendSms"]
    assert rpc.params["PhoneNumbers"] == OK_PHONE


async def test_throttled_send_is_retried_by_the_gateway_and_then_sent(setup):
    setup.fake.gateway.inject(Fault(code="Throttling.User", message="flow control"))
    done = await setup.send(OK_PHONE)
    (delivery,) = done["deliveries"]
    assert delivery["status"] == "sent" and delivery["attempts"] == 2
    kinds = [e["kind"] for e in delivery["events"]]
    assert "retrying" in kinds


async def test_invalid_number_fails_with_the_providers_code(setup):
    setup.fake.illegal_numbers.add(BAD_PHONE)
    done = await setup.send(BAD_PHONE)
    (delivery,) = done["deliveries"]
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    assert delivery["last_code"] == "isv.MOBILE_NUMBER_ILLEGAL"
