"""Voice end to end through a real gateway and the fake Alibaba Cloud voice service: accounts
validated on save, calls placed with a valid signature, and VoiceReport pushes to the callback
route marking deliveries delivered (reached) or undelivered (busy, invalid number ...)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from gateway.plugins import Plugins
from gateway.testing import serving
from plugins.voice import plugin as voice_plugin
from plugins.voice.fake import FakeVoice, make_app
from tests.aliyun_support import Product
from tests.gateway_fixtures import unique

KEY_ID = "LTAI5tVoiceReceipts1"
SECRET = "voice-receipts-secret-012345"
TOKEN = "voice-receipt-token-0123456789"
SHOW = "057100000001"
TTS = "TTS_100000001"  # 您好，${name}，${content}，请尽快处理。
REACHED, BUSY, EMPTY, EARLY = "13900000001", "13900000002", "13900000003", "01012345678"
FINAL = frozenset({"delivered", "undelivered"})


@pytest.fixture
async def setup(make_gateway) -> AsyncIterator[Product]:
    fake = FakeVoice(keys={KEY_ID: SECRET}, show_numbers={SHOW}, report_schedule=(0.05,))
    async with serving(make_app(fake)) as url:
        gw = await make_gateway(plugins=Plugins.load(extra=[("voice", voice_plugin)]))
        name = unique("voice")
        config = {
            "access_key_id": KEY_ID,
            "access_key_secret": SECRET,
            "called_show_number": SHOW,
            "endpoint": url,
            "receipt_token": TOKEN,
        }
        status, body = await gw.post(
            "/api/v1/accounts", {"channel": "voice", "name": name, "config": config}
        )
        assert status == 201, body
        variables = {"name": "值班员", "content": "支付网关故障"}
        yield Product("voice", fake, url, gw, name, TOKEN, TTS, variables)


async def test_call_results_mark_deliveries_delivered_or_undelivered(setup):
    done = await setup.send(REACHED, BUSY, EMPTY, EARLY)
    assert {d["status"] for d in done["deliveries"]} == {"sent"}
    calls = {c.callee: c for c in setup.fake.calls}
    assert calls[REACHED].text == "您好，值班员，支付网关故障，请尽快处理。"
    assert calls[REACHED].caller == SHOW

    setup.fake.results.update({BUSY: "200002", EMPTY: "200004", EARLY: "200001"})
    assert await setup.fake.push_reports(setup.callback(), progress=True) == 200

    final = await setup.gw.wait_done(done["id"], statuses=FINAL)
    by_rcpt = {d["recipient"]: d for d in final["deliveries"]}
    assert by_rcpt[REACHED]["status"] == "delivered"
    assert by_rcpt[EARLY]["status"] == "delivered"  # hung up early: the callee was reached
    busy, empty = by_rcpt[BUSY], by_rcpt[EMPTY]
    assert busy["status"] == "undelivered" and busy["last_code"] == "200002"
    assert busy["last_error"] == "用户忙 (USER_BUSY)"
    assert empty["status"] == "undelivered" and empty["last_code"] == "200004"
    receipt = by_rcpt[REACHED]["events"][-1]
    assert receipt["kind"] == "receipt" and receipt["detail"]["duration"] == "10"


async def test_progress_reports_alone_change_nothing(setup):
    done = await setup.send(REACHED)
    (call,) = setup.fake.calls
    async with (
        aiohttp.ClientSession() as http,
        http.post(setup.callback(), json=setup.fake.progress(call)) as response,
    ):
        assert response.status == 200 and (await response.json())["code"] == 0
    _, body = await setup.gw.get(f"/api/v1/messages/{done['id']}")
    assert body["deliveries"][0]["status"] == "sent"


async def test_push_with_a_wrong_token_is_refused(setup):
    done = await setup.send(REACHED)
    assert await setup.fake.push_reports(setup.callback("wrong-token-0123456789")) == 403
    _, body = await setup.gw.get(f"/api/v1/messages/{done['id']}")
    assert body["deliveries"][0]["status"] == "sent"


async def test_account_with_a_caller_number_of_bad_shape_is_refused(setup):
    status, body = await setup.gw.post(
        "/api/v1/accounts",
        {
            "channel": "voice",
            "name": unique("voice-bad"),
            "config": {
                "access_key_id": KEY_ID,
                "access_key_secret": SECRET,
                "called_show_number": "0571 1234",
                "endpoint": setup.url,
            },
        },
    )
    assert status == 422 and body["error"]["field"] == "config.called_show_number"


async def test_account_with_a_wrong_secret_is_refused_naming_the_field(setup):
    status, body = await setup.gw.post(
        "/api/v1/accounts",
        {
            "channel": "voice",
            "name": unique("voice-bad"),
            "config": {
                "access_key_id": KEY_ID,
                "access_key_secret": "not-the-voice-secret",
                "endpoint": setup.url,
            },
        },
    )
    assert status == 422 and body["error"]["field"] == "config.access_key_secret"
