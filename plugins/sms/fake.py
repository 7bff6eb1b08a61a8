"""A fake Alibaba Cloud SMS (dysmsapi 2017-05-25) for tests and demos (docs/providers.md §5.7).

On the shared gateway core (:mod:`plugins.aliyun.fake`: signature, timestamp, nonce, AccessKey,
faults) it serves ``SendSms`` and ``GetSmsSign`` and checks what the real service checks:
``PhoneNumbers`` (format, at most 1000), an approved ``SignName``, a known ``TemplateCode``, a
``TemplateParam`` that is a JSON object of strings covering the template's ``${var}`` names,
no links or blacklisted words in variables, 500 characters with the signature, and the
per-number windows (verification codes 1/minute, 5/hour, 10/day per signature and 40/day per
number; other templates 50/day), answering ``isv.*`` codes with HTTP 200. It renders and
records every message (``sent``) and returns a ``BizId``.

Receipts: set ``fake.reports.url`` (the gateway's ``/callbacks/sms/aliyun/<account>/<token>``)
and ``await fake.push_reports()``, or set ``auto_report`` to push after every send. A push not
answered HTTP 200 with a numeric ``code`` is retried after ``report_schedule`` (1, 5 and 10
minutes, as the real service; tests shorten it), then dropped (see ``fake.reports.pushes``).
Numbers in ``undeliverable`` get a failed report; numbers in ``illegal_numbers`` are refused as
``isv.MOBILE_NUMBER_ILLEGAL``.
Tests reach the state through ``app[FAKE_SMS]``.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import msgspec
from aiohttp import web

from gateway.callbacks import FakeProvider
from plugins.aliyun.fake import RpcError, RpcRequest, require
from plugins.aliyun.fake_product import FakeProduct, ParamMessages, china_text, fill, product_app
from plugins.sms.segments import MAX_LENGTH, count_segments, signed_text

log = logging.getLogger(__name__)

VERSION = "2017-05-25"
HOST = "dysmsapi.aliyuncs.com"
DEMO_KEY_ID = "LTAI5tFakeSmsKey0001"
DEMO_KEY_SECRET = "fake-sms-secret-0123456789abcdef"
DEMO_SIGN = "msggate测试"
MAX_NUMBERS = 1000
_NUMBER = re.compile(r"(?:\+86|0086|86)?(1\d{10})")
PARAM_MESSAGES = ParamMessages(
    invalid=("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值"),
    missing="模板缺少变量",
    link="不支持url为变量",
)


class FakeTemplate(msgspec.Struct, frozen=True):
    kind: Literal["verification", "notification", "promotion"]
    text: str


class SentSms(msgspec.Struct, frozen=True):
    """One message the fake accepted (one per number of a SendSms)."""

    biz_id: str
    phone: str
    sign_name: str
    template_code: str
    params: dict[str, str]
    text: str
    size: int
    at: float
    out_id: str = ""


DEMO_TEMPLATES: dict[str, FakeTemplate] = {
    "SMS_200000001": FakeTemplate("notification", "${name}您好，${content}"),
    "SMS_200000002": FakeTemplate("verification", "您的验证码为${code}，5分钟内有效。"),
    "SMS_200000003": FakeTemplate("notification", "系统通知：服务已恢复。"),
}


class FakeSms(FakeProduct):
    """The fake's state: accounts, signatures, templates, what was sent, receipts to push."""

    def __init__(
        self,
        *,
        keys: Mapping[str, str] | None = None,
        signs: Mapping[str, int] | None = None,
        templates: Mapping[str, FakeTemplate] | None = None,
        clock: Callable[[], float] = time.time,
        report_schedule: tuple[float, ...] = (60.0, 300.0, 600.0),
    ) -> None:
        super().__init__(
            HOST,
            keys or {DEMO_KEY_ID: DEMO_KEY_SECRET},
            clock=clock,
            report_schedule=report_schedule,
        )
        self.signs: dict[str, int] = dict(signs or {DEMO_SIGN: 1})  # name -> SignStatus
        self.templates: dict[str, FakeTemplate] = dict(templates or DEMO_TEMPLATES)
        self.undeliverable: dict[str, tuple[str, str]] = {}  # phone -> (err_code, err_msg)
        self.sent: list[SentSms] = []
        self.gateway.add_action("SendSms", VERSION, self.send_sms)
        self.gateway.add_action("GetSmsSign", VERSION, self.get_sms_sign)

    # -- actions ----------------------------------------------------------------------------

    async def get_sms_sign(self, rpc: RpcRequest) -> dict[str, Any]:
        require(rpc.params, "SignName")
        name = rpc.params["SignName"]
        status = self.signs.get(name)
        if status is None:
            raise RpcError("isv.SMS_SIGN_ILLEGAL", "签名不合法(不存在或被拉黑)")
        body: dict[str, Any] = {"SignName": name, "SignStatus": status}
        body["CreateDate"] = "2024-06-03 10:02:34"
        body["AuditInfo"] = {"RejectInfo": "资质信息不能证明签名归属" if status == 2 else ""}
        return body

    async def send_sms(self, rpc: RpcRequest) -> dict[str, Any]:
        p = rpc.params
        require(p, "PhoneNumbers", "SignName", "TemplateCode")
        phones = self._numbers(p["PhoneNumbers"])
        if self.signs.get(p["SignName"]) != 1:
            raise RpcError("isv.SMS_SIGNATURE_ILLEGAL", "签名不合法(不存在或被拉黑)")
        template = self.templates.get(p["TemplateCode"])
        if template is None:
            raise RpcError("isv.SMS_TEMPLATE_ILLEGAL", "模板不合法(不存在或被拉黑)")
        params = self.template_params(template.text, p.get("TemplateParam"), PARAM_MESSAGES)
        text = fill(template.text, params)
        counted = signed_text(p["SignName"], text)
        if len(counted) > MAX_LENGTH:
            raise RpcError("isv.PARAM_LENGTH_LIMIT", "参数超出长度限制")
        now = self.clock()
        for phone in phones:
            refusal = self._window_refusal(template, p["SignName"], p["TemplateCode"], phone, now)
            if refusal and self.flow_control:
                raise RpcError("isv.BUSINESS_LIMIT_CONTROL", refusal)
        biz_id = f"{random.randrange(10**17, 10**18)}^0"
        size = count_segments(counted)
        for phone in phones:
            self._count(template, p["SignName"], p["TemplateCode"], phone, now)
            self.sent.append(
                SentSms(
                    biz_id,
                    phone,
                    p["SignName"],
                    p["TemplateCode"],
                    params,
                    counted,
                    size,
                    now,
                    p.get("OutId", ""),
                )
            )
        self.accepted()
        return {"Code": "OK", "Message": "OK", "BizId": biz_id}

    def _numbers(self, value: str) -> list[str]:
        numbers = [n.strip() for n in value.split(",")]
        if len(numbers) > MAX_NUMBERS:
            raise RpcError("isv.MOBILE_COUNT_OVER_LIMIT", "手机号码数量超过限制")
        phones = []
        for number in numbers:
            match = _NUMBER.fullmatch(number)
            if match is None or match.group(1) in self.illegal_numbers:
                raise RpcError("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
            phones.append(match.group(1))
        return phones

    # -- per-number flow control (doc 44335) ------------------------------------------------

    def _window_refusal(
        self, template: FakeTemplate, sign: str, code: str, phone: str, now: float
    ) -> str | None:
        if template.kind == "verification":
            return self.windows.refusal(
                ("v", sign, phone), now, minute=1, hour=5, day=10
            ) or self.windows.refusal(("v", phone), now, day=40)
        return self.windows.refusal(("n", sign, code, phone), now, day=50)

    def _count(self, template: FakeTemplate, sign: str, code: str, phone: str, now: float) -> None:
        if template.kind == "verification":
            self.windows.count(("v", sign, phone), now)
            self.windows.count(("v", phone), now)
        else:
            self.windows.count(("n", sign, code, phone), now)

    # -- receipts (SmsReport, HTTP batch push) -----------------------------------------------

    def report(self, sms: SentSms) -> dict[str, Any]:
        """The SmsReport item the real service would push for ``sms``."""
        failure = self.undeliverable.get(sms.phone)
        return {
            "phone_number": sms.phone,
            "send_time": china_text(sms.at),
            "report_time": china_text(self.clock()),
            "success": failure is None,
            "err_code": failure[0] if failure else "DELIVERED",
            "err_msg": failure[1] if failure else "用户接收成功",
            "sms_size": str(sms.size),
            "biz_id": sms.biz_id,
            "out_id": sms.out_id,
        }

    async def push_reports(self, url: str | None = None) -> int:
        """Push the reports of every message not reported yet, in one batch; the HTTP status
        (0 when there is nothing to push or nowhere to push it)."""
        return await self.push_pending(
            url,
            self.sent,
            lambda s: (s.biz_id, s.phone),
            lambda pending: [self.report(s) for s in pending],
        )


FAKE_SMS = web.AppKey("fake_sms", FakeSms)


def make_app(fake: FakeSms | None = None) -> web.Application:
    """The fake SMS service (``app[FAKE_SMS]`` is its state)."""
    return product_app(fake or FakeSms(), FAKE_SMS)


def fake_provider() -> FakeProvider:
    """This fake as ``msggate fake-providers`` serves it, at ``/aliyun-sms``."""
    return FakeProvider(
        "aliyun-sms",
        make_app,
        f"Alibaba Cloud SMS (dysmsapi): AccessKey {DEMO_KEY_ID} / {DEMO_KEY_SECRET},"
        f" sign_name {DEMO_SIGN}, templates {', '.join(DEMO_TEMPLATES)}",
    )
