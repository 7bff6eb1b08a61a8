"""The shared Alibaba Cloud RPC client against the fake gateway core: signing, gateway-level
refusals (§4.4) classified, re-signing once on a stale timestamp or a reused nonce, transport
faults, and the error tables."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.channel import Failed, Retry
from gateway.testing import serving
from plugins.aliyun.client import AliyunClient, Reply
from plugins.aliyun.errors import COMMUNICATION_RULES, classify, field_for, safe_message
from plugins.aliyun.fake import FakeRpcGateway, Fault, RpcError, RpcRequest

KEY_ID = "LTAI5tClientTest01"
SECRET = "client-test-secret-abcdef"
VERSION = "2020-01-01"


class Fake:
    def __init__(self) -> None:
        self.gateway = FakeRpcGateway("example.aliyuncs.com", {KEY_ID: SECRET})
        self.gateway.add_action("Echo", VERSION, self.echo)
        self.url = ""

    async def echo(self, rpc: RpcRequest) -> dict:
        if rpc.params.get("Fail"):
            raise RpcError(rpc.params["Fail"], "business says no")
        return {"Echo": rpc.params.get("Say", "")}


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    state = Fake()
    app = web.Application()
    state.gateway.install(app)
    async with serving(app) as url:
        state.url = url
        yield state


@pytest.fixture
async def client() -> AsyncIterator[AliyunClient]:
    client = AliyunClient(timeout=2.0)
    yield client
    await client.close()


async def echo(client: AliyunClient, fake: Fake, secret: str = SECRET, **params: str):
    return await client.call(fake.url, "Echo", VERSION, params, KEY_ID, secret)


async def test_signed_call_reaches_the_action_with_its_parameters(client, fake):
    reply = await echo(client, fake, Say="你好 world*~")
    assert isinstance(reply, Reply) and reply.ok, reply
    assert reply.body["Echo"] == "你好 world*~" and reply.request_id
    (rpc,) = fake.gateway.received
    assert rpc.method == "POST" and rpc.params["Format"] == "JSON"
    assert rpc.params["RegionId"] == "cn-hangzhou"


async def test_wrong_secret_is_refused_with_signature_does_not_match(client, fake):
    outcome = await echo(client, fake, secret="wrong-secret-value", Say="13800138000")
    assert isinstance(outcome, Failed) and outcome.code == "SignatureDoesNotMatch"
    assert "access key secret" in outcome.reason.lower() or "secret" in outcome.reason
    assert "13800138000" not in outcome.reason and KEY_ID not in outcome.reason  # echo cut
    assert fake.gateway.refusals == [("SignatureDoesNotMatch", "Echo")]
    assert fake.gateway.received == []


async def test_unknown_access_key_is_refused(client, fake):
    outcome = await client.call(fake.url, "Echo", VERSION, {}, "LTAI-unknown", SECRET)
    assert isinstance(outcome, Failed) and outcome.code == "InvalidAccessKeyId.NotFound"
    assert field_for(outcome.code) == "access_key_id"


async def test_skewed_clock_is_resigned_once_then_failed_as_config(fake):
    client = AliyunClient(clock=lambda: time.time() - 1000)
    try:
        outcome = await echo(client, fake)
    finally:
        await client.close()
    assert isinstance(outcome, Failed) and outcome.code == "InvalidTimeStamp.Expired"
    assert "clock" in outcome.reason
    assert fake.gateway.refusals == [("InvalidTimeStamp.Expired", "Echo")] * 2


async def test_expired_timestamp_once_is_resigned_and_succeeds(client, fake):
    fake.gateway.inject(Fault(code="InvalidTimeStamp.Expired"))
    reply = await echo(client, fake, Say="again")
    assert isinstance(reply, Reply) and reply.ok
    nonces = [r.params["SignatureNonce"] for r in fake.gateway.received]
    assert len(nonces) == 2 and len(set(nonces)) == 2


async def test_replayed_nonce_is_refused_and_the_client_signs_again(fake):
    nonces = iter(["nonce-1", "nonce-1", "nonce-2"])
    client = AliyunClient(nonce=lambda: next(nonces))
    try:
        first = await echo(client, fake)
        second = await echo(client, fake)
    finally:
        await client.close()
    assert isinstance(first, Reply) and isinstance(second, Reply) and second.ok
    assert fake.gateway.refusals == [("SignatureNonceUsed", "Echo")]


async def test_missing_common_parameter_is_refused_by_name(fake):
    import aiohttp

    form = {"Action": "Echo", "Format": "JSON"}
    async with aiohttp.ClientSession() as http, http.post(fake.url + "/", data=form) as resp:
        assert resp.status == 400
        assert (await resp.json())["Code"] == "MissingVersion"


@pytest.mark.parametrize("code", ["Throttling.User", "Throttling.Api", "Throttling"])
async def test_throttling_is_rate_limited_for_at_least_a_second(client, fake, code):
    fake.gateway.inject(Fault(code=code, message="Request was denied due to user flow control."))
    outcome = await echo(client, fake)
    assert isinstance(outcome, Retry) and outcome.code == code and outcome.after >= 1.0


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retried(client, fake, status):
    fake.gateway.inject(Fault(status=status))
    outcome = await echo(client, fake)
    assert isinstance(outcome, Retry) and outcome.code == str(status)


async def test_slow_answer_to_a_send_is_unknown_not_retried(fake):
    client = AliyunClient(timeout=0.2)
    fake.gateway.inject(Fault(delay=1.0))
    try:
        outcome = await echo(client, fake)
    finally:
        await client.close()
    assert isinstance(outcome, Failed) and outcome.code == "unknown"


async def test_slow_answer_to_a_query_is_retried(fake):
    client = AliyunClient(timeout=0.2)
    fake.gateway.inject(Fault(delay=1.0))
    try:
        outcome = await client.call(fake.url, "Echo", VERSION, {}, KEY_ID, SECRET, idempotent=True)
    finally:
        await client.close()
    assert isinstance(outcome, Retry) and outcome.code == "timeout"


async def test_business_code_comes_back_as_a_reply_for_the_product(client, fake):
    reply = await echo(client, fake, Fail="isv.MOBILE_NUMBER_ILLEGAL")
    assert isinstance(reply, Reply) and not reply.ok and reply.status == 200
    outcome = reply.outcome()
    assert isinstance(outcome, Failed) and outcome.code == "isv.MOBILE_NUMBER_ILLEGAL"
    assert "business says no" in outcome.reason and reply.request_id in outcome.reason


async def test_unknown_action_is_a_config_error(client, fake):
    outcome = await client.call(fake.url, "Nope", VERSION, {}, KEY_ID, SECRET)
    assert isinstance(outcome, Failed) and outcome.code == "InvalidAction.NotFound"


async def test_connection_refused_is_retried(client):
    outcome = await client.call("http://127.0.0.1:1", "Echo", VERSION, {}, KEY_ID, SECRET)
    assert isinstance(outcome, Retry) and outcome.code == "connect"


def test_unknown_isp_code_is_temporary_and_unknown_isv_code_permanent():
    assert isinstance(classify("isp.SOMETHING_NEW", "x"), Retry)
    assert isinstance(classify("isv.SOMETHING_NEW", "x"), Failed)
    assert isinstance(classify("isp.SYSTEM_ERROR", "x"), Retry)
    assert "isv.OUT_OF_SERVICE" in COMMUNICATION_RULES


def test_safe_message_cuts_the_echoed_string_to_sign():
    message = (
        "Specified signature is not matched with our calculation. server string to sign is:"
        "POST&%2F&AccessKeyId%3DLTAI%26PhoneNumbers%3D13800138000"
    )
    assert safe_message(message) == (
        "Specified signature is not matched with our calculation. (request echo removed)"
    )
