"""The Alibaba Cloud fakes as ``msggate fake-providers`` serves them: mounted under their names,
driven over HTTP (faults, receipts), with the gateway checks of the shared core."""

from __future__ import annotations

import time

import aiohttp
from aiohttp import web

from gateway.callbacks import fake_providers_app
from gateway.channel import AccountRef, Outgoing, Retry, Sent
from gateway.plugins import Plugins
from gateway.testing import outgoing, serving
from plugins.aliyun.fake import FakeRpcGateway, parse_timestamp
from plugins.aliyun.signature import signed_params
from plugins.sms import fake as sms_fake
from plugins.sms import plugin as sms_plugin
from plugins.sms.account import SmsAccount
from plugins.sms.channel import SmsChannel
from plugins.voice import fake as voice_fake
from plugins.voice import plugin as voice_plugin
from plugins.voice.account import VoiceAccount
from plugins.voice.channel import VoiceChannel


def _outgoing(recipient: str, template: str, **variables: str) -> Outgoing:
    return outgoing(recipient, template=template, variables=variables)


async def test_fakes_mounted_under_their_names_take_the_demo_credentials():
    plugins = Plugins.load(extra=[("sms", sms_plugin), ("voice", voice_plugin)], entry_points=False)
    fakes = plugins.fake_providers()
    assert {f.name for f in fakes} == {"aliyun-sms", "aliyun-voice"}
    sms, voice = SmsChannel(), VoiceChannel()
    async with serving(fake_providers_app(fakes)) as url:
        sms_account = SmsAccount(
            access_key_id=sms_fake.DEMO_KEY_ID,
            access_key_secret=sms_fake.DEMO_KEY_SECRET,
            sign_name=sms_fake.DEMO_SIGN,
            endpoint=f"{url}/aliyun-sms",
        )
        voice_account = VoiceAccount(
            access_key_id=voice_fake.DEMO_KEY_ID,
            access_key_secret=voice_fake.DEMO_KEY_SECRET,
            called_show_number=voice_fake.DEMO_SHOW_NUMBER,
            endpoint=f"{url}/aliyun-voice",
        )
        try:
            await sms.validate_account(AccountRef("demo", 1, sms_account))
            await voice.validate_account(AccountRef("demo", 1, voice_account))
            sent = await sms.send(
                AccountRef("demo", 1, sms_account),
                _outgoing("13800138000", "SMS_200000002", code="1234"),
            )
            called = await voice.send(
                AccountRef("demo", 1, voice_account),
                _outgoing("13800138000", "TTS_100000002", code="1234"),
            )
        finally:
            await sms.close()
            await voice.close()
    assert isinstance(sent, Sent) and isinstance(called, Sent)


async def test_faults_and_receipts_can_be_driven_over_http():
    state = sms_fake.FakeSms()
    channel = SmsChannel()
    async with serving(sms_fake.make_app(state)) as url, aiohttp.ClientSession() as http:
        fault = {"code": "Throttling.User", "message": "over HTTP", "action": "SendSms"}
        async with http.post(f"{url}/_fake/faults", json=fault) as response:
            assert response.status == 200
        account = AccountRef(
            "demo",
            1,
            SmsAccount(
                access_key_id=sms_fake.DEMO_KEY_ID,
                access_key_secret=sms_fake.DEMO_KEY_SECRET,
                sign_name=sms_fake.DEMO_SIGN,
                endpoint=url,
            ),
        )
        try:
            outgoing = _outgoing("13800138000", "SMS_200000003")
            assert isinstance(await channel.send(account, outgoing), Retry)
            assert isinstance(await channel.send(account, outgoing), Sent)
        finally:
            await channel.close()
        async with http.get(f"{url}/_fake/requests") as response:
            listed = await response.json()
        assert [r["action"] for r in listed["requests"]] == ["SendSms", "SendSms"]
        async with http.post(f"{url}/_fake/receipts", json={}) as response:
            assert (await response.json())["status"] == 0  # no receipt URL configured


async def test_gateway_core_refuses_a_malformed_timestamp_and_an_unsupported_method():
    gateway = FakeRpcGateway("x.aliyuncs.com", {"id": "secret"})
    app = web.Application()
    gateway.install(app)
    params = signed_params("POST", "A", "1", {}, "id", "secret", at=time.time(), nonce="n1")
    bad_time = {**params, "Timestamp": "2024-01-02 03:04:05"}
    bad_method = {**params, "SignatureMethod": "HMAC-SHA256"}
    async with serving(app) as url, aiohttp.ClientSession() as http:
        for form, code in (
            (bad_time, "InvalidTimeStamp.Format"),
            (bad_method, "InvalidSignatureMethod.Malformed"),
        ):
            async with http.post(url + "/", data=form) as response:
                assert response.status == 400
                assert code in await response.text()  # Format=JSON: the answer is JSON


def test_timestamps_parse_only_in_the_documented_form():
    assert parse_timestamp("2017-07-12T02:42:19Z") == 1499827339.0
    assert parse_timestamp("2017-07-12T02:42:19+08:00") is None
