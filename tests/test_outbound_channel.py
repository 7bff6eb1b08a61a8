"""The outbound channel against the fake robot-call APIs: both APIs, signatures, every fault."""

from __future__ import annotations

import asyncio
import json
import socket

import msgspec
import pytest

from gateway.channel import AccountInvalid, AccountRef, Failed, Retry, Sent
from gateway.plugins import contract_problem
from plugins.aliyun.fake import Fault
from plugins.outbound import plugin
from plugins.outbound.account import OutboundAccount
from plugins.outbound.channel import OutboundChannel
from plugins.outbound.options import OutboundOptions
from tests.outbound_fixtures import (
    CALLEE,
    CALLER,
    COMPANY,
    KEY_ID,
    KEY_SECRET,
    SCRIPT,
    WRONG_SECRET,
    RunningOutbound,
    call,
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config(**overrides) -> OutboundAccount:
    values = {
        "access_key_id": KEY_ID,
        "access_key_secret": KEY_SECRET,
        "company_name": COMPANY,
        "caller_number": CALLER,
    }
    return OutboundAccount(**{**values, **overrides})


# --- the channel and its account -------------------------------------------------------------


def test_plugin_provides_the_channel_its_receipt_route_and_its_fake():
    [channel] = plugin.msggate_channels()
    assert channel.name == "outbound" and contract_problem(channel) is None
    assert {"access_key_secret", "receipt_token"} <= channel.account_type.secret_fields
    assert channel.unit == "call"
    [route] = plugin.msggate_callback_routes()
    assert (route.method, route.path) == ("POST", "/outbound/aliyun/{account}/{token}")
    assert [f.name for f in plugin.msggate_fake_providers()] == ["outbound"]


def test_account_has_the_manuals_fields_and_checks_them():
    account = config()
    assert account.api == "dyvms" and account.url == "https://dyvmsapi.aliyuncs.com"
    assert config(api="aiccs").url == "https://aiccs.aliyuncs.com"
    assert KEY_SECRET not in repr(account)
    for overrides, field in (
        ({"caller_number": "0571-0000"}, "caller_number"),
        ({"caller_number": f"{CALLER},057100000001", "api": "aiccs"}, "caller_number"),
        ({"company_name": " 示例 "}, "company_name"),
        ({"endpoint": "not a url"}, "endpoint"),
    ):
        with pytest.raises(AccountInvalid) as raised:
            config(**overrides)
        assert raised.value.field == field, overrides
    assert config(caller_number=f"{CALLER},057100000001").caller_number.count(",") == 1


def test_recipients_are_bare_mainland_numbers():
    channel = OutboundChannel()
    assert channel.check_recipient("13900000000") is None
    assert channel.check_recipient("057188889999") is None  # a landline with its area code
    assert channel.normalize_recipient("+86 139 0000 0000") == "13900000000"
    assert channel.normalize_recipient("+86 571 8888 9999") == "057188889999"
    for bad in ("", "139", "23900000000", "not a number", "x" * 400):
        assert channel.check_recipient(bad), bad


def test_rate_limits_are_declared_per_accesskey_and_per_callee():
    channel = OutboundChannel()
    limits = channel.rate_limits(AccountRef("o", 1, config()), call())
    assert [(limit.limit, limit.per_seconds) for limit in limits] == [
        (100, 1.0),
        (1, 60.0),
        (5, 3600.0),
        (20, 86400.0),
    ]
    assert all(CALLEE not in limit.key and KEY_SECRET not in limit.key for limit in limits)
    aiccs = channel.rate_limits(AccountRef("o", 1, config(api="aiccs")), call())
    assert aiccs[0].limit == 1000


def test_options_are_checked():
    assert msgspec.convert({"task_name": "告警外呼"}, OutboundOptions).task_name == "告警外呼"
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"task_name": "x" * 31}, OutboundOptions)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"speed": 3}, OutboundOptions)


# --- placing calls ---------------------------------------------------------------------------


async def test_dyvms_call_places_a_one_number_task_with_the_script_and_variables(
    outbound: RunningOutbound, outbound_channel
):
    outgoing = call(variables={"name": "张三", "minutes": 15})
    outcome = await outbound_channel.send(outbound.account(), outgoing)
    assert isinstance(outcome, Sent) and outcome.units == 1, outcome
    [placed] = outbound.fake.calls
    assert outcome.provider_id == placed.provider_id  # the TaskId
    assert placed.api == "dyvms" and placed.callee == CALLEE and placed.script == SCRIPT
    assert placed.variables == {"name": "张三", "minutes": "15"}
    params = placed.params
    assert params["CorpName"] == COMPANY and params["CalledShowNumber"] == CALLER
    assert params["TaskName"].startswith("msggate-") and len(params["TaskName"]) <= 30
    assert json.loads(params["TtsParamHead"]) == ["name", "minutes"]
    assert params["Version"] == "2017-05-25" and params["SignatureMethod"] == "HMAC-SHA1"


async def test_dyvms_options_set_task_name_and_early_media(
    outbound: RunningOutbound, outbound_channel
):
    options = OutboundOptions(task_name="磁盘告警", early_media_asr=True)
    outcome = await outbound_channel.send(outbound.account(), call(options=options))
    assert isinstance(outcome, Sent)
    params = outbound.fake.calls[0].params
    assert params["TaskName"] == "磁盘告警" and params["EarlyMediaAsr"] == "true"


async def test_aiccs_call_places_one_call_with_params_and_an_out_id(
    outbound: RunningOutbound, outbound_channel
):
    options = OutboundOptions(record=True)
    outcome = await outbound_channel.send(
        outbound.account(api="aiccs"), call(variables={"name": "李四"}, options=options)
    )
    assert isinstance(outcome, Sent), outcome
    [placed] = outbound.fake.calls
    assert placed.api == "aiccs" and outcome.provider_id == placed.provider_id
    assert "^" in placed.provider_id  # the call id
    assert placed.variables == {"name": "李四"}
    assert placed.params["RobotId"] == SCRIPT and placed.params["RecordFlag"] == "true"
    assert len(placed.params["OutId"]) == 15 and "CorpName" not in placed.params


async def test_call_without_variables_sends_no_parameters(
    outbound: RunningOutbound, outbound_channel
):
    for api in ("dyvms", "aiccs"):
        outcome = await outbound_channel.send(outbound.account(api=api), call(variables={}))
        assert isinstance(outcome, Sent), (api, outcome)
    dyvms, aiccs = outbound.fake.calls
    assert "TtsParam" not in dyvms.params and "Params" not in aiccs.params


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"template": None}, "template"),
        ({"template": "robot-one"}, "template"),
        ({"variables": {"when": {"h": 1}}}, "variables"),
        ({"variables": {"ok": True}}, "variables"),
    ],
)
async def test_bad_script_or_variables_fail_before_calling(
    outbound: RunningOutbound, outbound_channel, fields, code
):
    outcome = await outbound_channel.send(outbound.account(), call(**fields))
    assert isinstance(outcome, Failed) and outcome.code == code
    assert outbound.fake.gateway.received == []


async def test_aiccs_params_over_512_bytes_fail_before_calling(
    outbound: RunningOutbound, outbound_channel
):
    outcome = await outbound_channel.send(
        outbound.account(api="aiccs"), call(variables={"text": "告" * 168})
    )
    assert isinstance(outcome, Failed) and outcome.code == "size" and "515 bytes" in outcome.reason
    assert outbound.fake.gateway.received == []
    outcome = await outbound_channel.send(
        outbound.account(api="aiccs"),
        call(variables={"text": "告" * 165}),  # 506 bytes
    )
    assert isinstance(outcome, Sent), outcome


# --- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["dyvms", "aiccs"])
async def test_wrong_secret_is_refused_by_the_signature_check(
    outbound: RunningOutbound, outbound_channel, api
):
    outcome = await outbound_channel.send(
        outbound.account(api=api, access_key_secret=WRONG_SECRET), call()
    )
    assert isinstance(outcome, Failed) and outcome.code == "SignatureDoesNotMatch"
    assert WRONG_SECRET not in outcome.reason and "string to sign" not in outcome.reason
    assert outbound.fake.gateway.refusals[-1][0] == "SignatureDoesNotMatch"
    assert outbound.fake.calls == []


async def test_unknown_accesskey_is_refused(outbound: RunningOutbound, outbound_channel):
    outcome = await outbound_channel.send(outbound.account(access_key_id="LTAI-unknown"), call())
    assert isinstance(outcome, Failed) and outcome.code == "InvalidAccessKeyId.NotFound"


async def test_stale_timestamp_is_signed_again_once(outbound: RunningOutbound, outbound_channel):
    outbound.fake.gateway.inject(Fault(code="InvalidTimeStamp.Expired"))
    outcome = await outbound_channel.send(outbound.account(), call())
    assert isinstance(outcome, Sent), outcome
    assert len(outbound.fake.calls) == 1


# --- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "after"),
    [
        ("Throttling.User", "Request was denied due to user flow control.", 1.0),
        ("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1", 60.0),
        ("isv.BUSINESS_LIMIT_CONTROL", "触发小时级流控Permits:5", 3600.0),
        ("isp.SYSTEM_ERROR", "系统错误", 0.0),
        ("isp.SOMETHING_NEW", "provider trouble", 0.0),
    ],
)
async def test_throttling_and_system_errors_are_retried(
    outbound: RunningOutbound, outbound_channel, code, message, after
):
    outbound.fake.gateway.inject(Fault(code=code, message=message))
    outcome = await outbound_channel.send(outbound.account(), call())
    assert isinstance(outcome, Retry) and outcome.code == code and outcome.after == after
    assert message in outcome.reason


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retried(outbound: RunningOutbound, outbound_channel, status):
    outbound.fake.gateway.inject(Fault(status=status))
    outcome = await outbound_channel.send(outbound.account(), call())
    assert isinstance(outcome, Retry)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", "触发天级流控Permits:20"),
        ("isv.MOBILE_NUMBER_ILLEGAL", "号码格式非法"),
        ("isv.INVALID_PARAMETERS", "参数异常"),
        ("isv.SOMETHING_NEW", "a new refusal"),
    ],
)
async def test_message_errors_fail_with_the_providers_code(
    outbound: RunningOutbound, outbound_channel, code, message
):
    outbound.fake.gateway.inject(Fault(code=code, message=message))
    outcome = await outbound_channel.send(outbound.account(), call())
    assert isinstance(outcome, Failed) and outcome.code == code and message in outcome.reason


async def test_caller_number_not_owned_is_an_account_problem(
    outbound: RunningOutbound, outbound_channel
):
    outcome = await outbound_channel.send(outbound.account(caller_number="057199999999"), call())
    assert isinstance(outcome, Failed) and outcome.code == "isv.DISPLAY_NUMBER_ILLEGAL"
    assert "caller number" in outcome.reason


async def test_unregistered_company_and_unknown_script_fail(
    outbound: RunningOutbound, outbound_channel
):
    outcome = await outbound_channel.send(outbound.account(company_name="别的公司"), call())
    assert isinstance(outcome, Failed) and "CorpName" in outcome.reason
    outcome = await outbound_channel.send(outbound.account(), call(template="999"))
    assert isinstance(outcome, Failed) and "DialogId" in outcome.reason
    outcome = await outbound_channel.send(outbound.account(api="aiccs"), call(template="999"))
    assert isinstance(outcome, Failed) and "RobotId" in outcome.reason


@pytest.mark.parametrize(
    ("code", "field"),
    [("Parameter.Error", None), ("Permission.NotAuthorized", "RAM user")],
)
async def test_aiccs_errors_fail(outbound: RunningOutbound, outbound_channel, code, field):
    outbound.fake.gateway.inject(Fault(code=code, status=400))
    outcome = await outbound_channel.send(outbound.account(api="aiccs"), call())
    assert isinstance(outcome, Failed) and outcome.code == code
    assert field is None or field in outcome.reason


async def test_per_callee_limit_of_the_provider_is_retried_after_a_minute(
    outbound: RunningOutbound, outbound_channel
):
    outbound.fake.per_callee_per_minute = 1
    assert isinstance(await outbound_channel.send(outbound.account(), call()), Sent)
    outcome = await outbound_channel.send(outbound.account(), call())
    assert isinstance(outcome, Retry) and outcome.after == 60.0
    assert isinstance(await outbound_channel.send(outbound.account(), call("13900000001")), Sent)


async def test_slow_answer_is_unknown_and_not_resent(outbound: RunningOutbound, outbound_channel):
    outbound.fake.fail_callee(CALLEE, delay=1.5)
    outcome = await outbound_channel.send(outbound.account(timeout=1.0), call())
    assert isinstance(outcome, Failed) and outcome.code == "unknown"
    await asyncio.sleep(0.7)
    assert len(outbound.fake.calls) == 1  # the call was placed: resending would ring twice


async def test_unreachable_provider_is_retried(outbound_channel):
    account = AccountRef("o", 1, config(endpoint=f"http://127.0.0.1:{closed_port()}"))
    outcome = await outbound_channel.send(account, call())
    assert isinstance(outcome, Retry) and outcome.code == "connect"


# --- validate_account ------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["dyvms", "aiccs"])
async def test_validate_account_lists_the_scripts_with_a_signed_read(
    outbound: RunningOutbound, outbound_channel, api
):
    await outbound_channel.validate_account(outbound.account(api=api))
    [request] = outbound.fake.gateway.received
    expected = "QueryRobotv2AllList" if api == "dyvms" else "ListAiccsRobot"
    assert request.action == expected and outbound.fake.calls == []


@pytest.mark.parametrize(
    ("overrides", "field", "code"),
    [
        ({"access_key_secret": WRONG_SECRET}, "access_key_secret", "SignatureDoesNotMatch"),
        ({"access_key_id": "LTAI-unknown"}, "access_key_id", "InvalidAccessKeyId.NotFound"),
    ],
)
async def test_validate_account_names_the_wrong_field_with_the_providers_reason(
    outbound: RunningOutbound, outbound_channel, overrides, field, code
):
    with pytest.raises(AccountInvalid) as raised:
        await outbound_channel.validate_account(outbound.account(**overrides))
    assert raised.value.field == field and code in raised.value.reason
    assert WRONG_SECRET not in raised.value.reason


async def test_validate_account_names_the_endpoint_when_unreachable(outbound_channel):
    account = AccountRef("o", 1, config(endpoint=f"http://127.0.0.1:{closed_port()}"))
    with pytest.raises(AccountInvalid) as raised:
        await outbound_channel.validate_account(account)
    assert raised.value.field == "endpoint"
