"""The Alibaba Cloud RPC v1 signature reproduces the test vectors of docs/providers.md §4.3."""

from __future__ import annotations

import calendar
import time

import aiohttp
import pytest
from aiohttp import web

from gateway.testing import serving
from plugins.aliyun.fake import FakeRpcGateway, RpcRequest
from plugins.aliyun.signature import (
    canonical_query,
    percent_encode,
    sign,
    signed_params,
    string_to_sign,
)
from tests.aliyun_support import VECTOR_C

SECRET = "testSecret"

VECTOR_A = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
VECTOR_A_QUERY = (
    "AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123&PhoneNumbers=15300000001"
    "&RegionId=cn-hangzhou&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B"
    "%E8%AF%95%E4%B8%93%E7%94%A8&SignatureMethod=HMAC-SHA1"
    "&SignatureNonce=45e25e9b-0a6f-4070-8c85-2956eda1b466&SignatureVersion=1.0"
    "&TemplateCode=SMS_71390007&TemplateParam=%7B%22customer%22%3A%22test%22%7D"
    "&Timestamp=2017-07-12T02%3A42%3A19Z&Version=2017-05-25"
)
VECTOR_A_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123"
    "%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF"
    "%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1%25E6%25B5%258B%25E8%25AF"
    "%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D"
    "45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%26TemplateCode%3D"
    "SMS_71390007%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D"
    "%26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25"
)

VECTOR_B = {
    "AccessKeyId": "testId",
    "Action": "SingleCallByTts",
    "CalledNumber": "15300000001",
    "CalledShowNumber": "057112345678",
    "Format": "XML",
    "OutId": "123",
    "RegionId": "cn-hangzhou",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "Timestamp": "2017-07-12T02:42:19Z",
    "TtsCode": "TTS_158490013",
    "TtsParam": '{"customer":"test"}',
    "Version": "2017-05-25",
}


def test_vector_a_canonical_query_string_is_exact():
    assert canonical_query(VECTOR_A) == VECTOR_A_QUERY


def test_vector_a_string_to_sign_is_exact():
    assert string_to_sign("GET", VECTOR_A) == VECTOR_A_STRING_TO_SIGN


def test_vector_a_get_signature_is_the_official_example():
    assert sign("GET", VECTOR_A, SECRET) == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    assert percent_encode(sign("GET", VECTOR_A, SECRET)) == "zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D"


def test_vector_a_signed_for_post_differs_by_the_method():
    assert sign("POST", VECTOR_A, SECRET) == "Xvhv7fPXrPkLVSnlt0jIr08o8NQ="


def test_vector_b_single_call_by_tts():
    assert sign("GET", VECTOR_B, SECRET) == "ffkoOu1jggtI3SzACYAhpRKMXIU="


def test_vector_c_batch_robot_smart_call_with_cjk_and_json_params():
    assert sign("POST", VECTOR_C, SECRET) == "vEAQedtMxHy9N1V7Uqo42TR4rkw="


def test_tts_param_sorts_before_tts_param_head():
    query = canonical_query(VECTOR_C)
    assert query.index("TtsParam=") < query.index("TtsParamHead=")


def test_percent_encoding_spot_check():
    assert percent_encode("a b*c~d/é+=") == "a%20b%2Ac~d%2F%C3%A9%2B%3D"


def test_signature_parameter_is_not_signed():
    assert canonical_query({**VECTOR_A, "Signature": "anything"}) == VECTOR_A_QUERY


def test_signed_params_builds_vector_a_from_its_parts():
    at = calendar.timegm(time.strptime("2017-07-12T02:42:19Z", "%Y-%m-%dT%H:%M:%SZ"))
    own = {k: VECTOR_A[k] for k in ("OutId", "PhoneNumbers", "SignName", "TemplateCode")}
    own["TemplateParam"] = VECTOR_A["TemplateParam"]
    params = signed_params(
        "GET",
        "SendSms",
        "2017-05-25",
        own,
        "testId",
        SECRET,
        at=at,
        nonce=VECTOR_A["SignatureNonce"],
        region_id="cn-hangzhou",
        response_format="XML",
    )
    assert params["Signature"] == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    assert {k: v for k, v in params.items() if k != "Signature"} == VECTOR_A


def test_signed_params_refuses_to_let_the_caller_set_common_parameters():
    with pytest.raises(ValueError, match="Timestamp"):
        signed_params("POST", "A", "1", {"Timestamp": "x"}, "id", "s", at=0, nonce="n")


async def test_fake_gateway_accepts_the_official_vector_a_request():
    at = calendar.timegm(time.strptime("2017-07-12T02:42:19Z", "%Y-%m-%dT%H:%M:%SZ"))
    gateway = FakeRpcGateway("dysmsapi.aliyuncs.com", {"testId": SECRET}, clock=lambda: at + 5)
    seen: list[RpcRequest] = []

    async def send_sms(rpc: RpcRequest) -> dict:
        seen.append(rpc)
        return {"BizId": "900619746936498440^0"}

    gateway.add_action("SendSms", "2017-05-25", send_sms)
    app = web.Application()
    gateway.install(app)
    query = {**VECTOR_A, "Signature": "zJDF+Lrzhj/ThnlvIToysFRq6t4="}
    async with serving(app) as url, aiohttp.ClientSession() as http:
        async with http.get(url + "/", params=query) as response:
            assert response.status == 200
            assert "<Code>OK</Code>" in await response.text()  # Format=XML
        tampered = {**query, "PhoneNumbers": "15300000002"}
        async with http.get(url + "/", params=tampered) as response:
            assert response.status == 400
            assert "<Code>SignatureDoesNotMatch</Code>" in await response.text()
    assert [r.params["PhoneNumbers"] for r in seen] == ["15300000001"]
