"""The fake robot-call APIs check requests as Alibaba Cloud does, from the signature up."""

from __future__ import annotations

import calendar
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.callbacks import fake_providers_app
from gateway.plugins import Plugins
from gateway.testing import serving
from plugins.aliyun.fake import FakeRpcGateway
from plugins.aliyun.signature import signed_params
from plugins.outbound.fake import (
    DEMO_CALLER,
    DEMO_COMPANY,
    DEMO_KEY_ID,
    DEMO_KEY_SECRET,
    DEMO_SCRIPT,
    OutboundFake,
    make_app,
)
from tests.aliyun_support import VECTOR_C as VECTOR_C_PARAMS
from tests.outbound_fixtures import (
    CALLEE,
    CALLER,
    COMPANY,
    KEY_ID,
    KEY_SECRET,
    SCRIPT,
    RunningOutbound,
)

# docs/providers.md §4.3 Vector C, with its signature
VECTOR_C = {**VECTOR_C_PARAMS, "Signature": "vEAQedtMxHy9N1V7Uqo42TR4rkw="}
VECTOR_C_TIME = calendar.timegm(time.strptime("2024-01-02T03:04:05Z", "%Y-%m-%dT%H:%M:%SZ"))


async def post(url: str, form: dict[str, str]) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http, http.post(url + "/", data=form) as response:
        return response.status, await response.json()


def vector_c_fake(clock: float) -> OutboundFake:
    fake = OutboundFake(FakeRpcGateway("dyvmsapi.aliyuncs.com", {}, clock=lambda: clock))
    fake.add_account("testId", "testSecret", "示例科技有限公司", "057100000000", {"1000001234"})
    return fake


async def test_the_documented_signature_vector_places_the_task():
    fake = vector_c_fake(VECTOR_C_TIME)
    async with serving(make_app(fake)) as url:
        status, body = await post(url, VECTOR_C)
    assert status == 200 and body["Code"] == "OK" and body["TaskId"], body
    assert [c.callee for c in fake.calls] == ["13900000000", "13900000001"]
    assert fake.calls[1].variables == {"name": "李四"}


async def test_a_changed_parameter_breaks_the_signature_and_an_old_one_the_clock():
    fake = vector_c_fake(VECTOR_C_TIME)
    async with serving(make_app(fake)) as url:
        status, body = await post(url, {**VECTOR_C, "CalledNumber": "13900000002"})
        assert status == 400 and body["Code"] == "SignatureDoesNotMatch"
        assert "server string to sign is:" in body["Message"]
    stale = vector_c_fake(VECTOR_C_TIME + 901)
    async with serving(make_app(stale)) as url:
        status, body = await post(url, VECTOR_C)  # signature right, 15 minutes and 1 s late
    assert status == 400 and body["Code"] == "InvalidTimeStamp.Expired"
    assert fake.calls == [] and stale.calls == []


async def test_a_replayed_nonce_is_refused():
    fake = vector_c_fake(VECTOR_C_TIME)
    async with serving(make_app(fake)) as url:
        assert (await post(url, VECTOR_C))[1]["Code"] == "OK"
        status, body = await post(url, VECTOR_C)
    assert status == 400 and body["Code"] == "SignatureNonceUsed" and len(fake.calls) == 2


def signed(params: dict[str, str], action: str = "BatchRobotSmartCall") -> dict[str, str]:
    version = "2017-05-25" if action == "BatchRobotSmartCall" else "2019-10-15"
    return signed_params(
        "POST",
        action,
        version,
        params,
        KEY_ID,
        KEY_SECRET,
        at=time.time(),
        nonce=str(time.monotonic_ns()),
        region_id="cn-hangzhou",
    )


TASK = {
    "CalledShowNumber": CALLER,
    "CorpName": COMPANY,
    "CalledNumber": CALLEE,
    "DialogId": SCRIPT,
    "TaskName": "alert",
}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"CorpName": None}, "MissingCorpName"),
        ({"CorpName": "别的公司"}, "isv.INVALID_PARAMETERS"),
        ({"CalledShowNumber": "057199999999"}, "isv.DISPLAY_NUMBER_ILLEGAL"),
        ({"CalledNumber": "12345"}, "isv.MOBILE_NUMBER_ILLEGAL"),
        (
            {"CalledNumber": ",".join(f"139{i:08d}" for i in range(101))},
            "isv.MOBILE_COUNT_OVER_LIMIT",
        ),
        ({"DialogId": None}, "MissingDialogId"),
        ({"DialogId": "42"}, "isv.INVALID_PARAMETERS"),
        ({"TaskName": "x" * 31}, "isv.INVALID_PARAMETERS"),
        ({"TaskName": None}, "MissingTaskName"),
        ({"TtsParamHead": '["name"]', "TtsParam": "[{}]"}, "isv.INVALID_JSON_PARAM"),
        (
            {"TtsParamHead": '["a","b"]', "TtsParam": '[{"number":"13900000000","params":["x"]}]'},
            "isv.INVALID_JSON_PARAM",
        ),
    ],
)
async def test_batch_robot_smart_call_parameters_are_checked(
    outbound: RunningOutbound, change: dict[str, Any], code: str
):
    params = {k: v for k, v in {**TASK, **change}.items() if v is not None}
    _, body = await post(outbound.url, signed(params))
    assert body["Code"] == code, body
    assert outbound.fake.calls == []


async def test_a_self_line_task_needs_no_company(outbound: RunningOutbound):
    params = {k: v for k, v in TASK.items() if k != "CorpName"}
    _, body = await post(outbound.url, signed({**params, "IsSelfLine": "true"}))
    assert body["Code"] == "OK", body


@pytest.mark.parametrize(
    "change",
    [
        {"Params": '{"a":"' + "x" * 510 + '"}'},
        {"Params": "[1, 2]"},
        {"OutId": "x" * 16},
        {"RecordFlag": "yes"},
        {"CalledNumber": "1234"},
    ],
)
async def test_robot_call_parameters_are_checked(outbound: RunningOutbound, change):
    params = {"CalledShowNumber": CALLER, "CalledNumber": CALLEE, "RobotId": SCRIPT, **change}
    status, body = await post(outbound.url, signed(params, "RobotCall"))
    assert status == 400 and body["Code"] == "Parameter.Error", body


async def test_calls_push_their_results_to_the_receipt_url(outbound: RunningOutbound):
    received: list[Any] = []

    async def receiver(request):
        received.extend(await request.json())
        return web.json_response({"code": 0, "msg": "接收成功"})

    app = web.Application()
    app.router.add_post("/r", receiver)
    async with serving(app) as url:
        outbound.fake.receipt_url = url + "/r"
        outbound.fake.results["13900000001"] = "200002"
        _, task = await post(outbound.url, signed({**TASK, "CalledNumber": "13900000001"}))
        params = {"CalledShowNumber": CALLER, "CalledNumber": CALLEE, "RobotId": SCRIPT}
        _, robot = await post(outbound.url, signed(params, "RobotCall"))
        await outbound.fake.settle()
    voice, aiccs = sorted(received, key=lambda r: "callId" in r)
    assert voice["out_id"].split("^")[1] == task["TaskId"] and voice["status_code"] == "200002"
    assert aiccs["callId"] == robot["Data"] and aiccs["data"]["info"]["code"] == 200000
    assert [status for status, _ in outbound.fake.pushes] == [200, 200]


async def test_fake_is_served_by_the_fake_providers_command_with_a_demo_account():
    fakes = Plugins.load().fake_providers()
    assert "outbound" in [f.name for f in fakes]
    async with serving(fake_providers_app(fakes)) as url:
        form = signed_params(
            "POST",
            "BatchRobotSmartCall",
            "2017-05-25",
            {
                "CalledShowNumber": DEMO_CALLER,
                "CorpName": DEMO_COMPANY,
                "CalledNumber": CALLEE,
                "DialogId": DEMO_SCRIPT,
                "TaskName": "demo",
            },
            DEMO_KEY_ID,
            DEMO_KEY_SECRET,
            at=time.time(),
            nonce="demo-nonce",
        )
        _, body = await post(url + "/outbound", form)
    assert body["Code"] == "OK", body


async def test_receipt_url_and_results_can_be_set_over_http_for_demos(outbound: RunningOutbound):
    settings = {"url": "http://127.0.0.1:1/r", "results": {CALLEE: "200010"}, "delay": 2}
    async with (
        aiohttp.ClientSession() as http,
        http.post(outbound.url + "/_fake/receipts", json=settings) as response,
    ):
        assert response.status == 200
    fake = outbound.fake
    assert fake.receipt_url == "http://127.0.0.1:1/r" and fake.results == {CALLEE: "200010"}
    assert fake.receipt_delay == 2.0
    fake.receipt_url = None
