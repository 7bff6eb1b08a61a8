"""A fake Alibaba Cloud voice service (dyvmsapi 2017-05-25) for tests and demos.

On the shared gateway core (:mod:`plugins.aliyun.fake`: signature, timestamp, nonce, AccessKey,
faults) it serves ``SingleCallByTts`` and ``QueryCallDetailByCallId`` and checks what the real
service checks (docs/providers.md §6): exactly one ``CalledNumber`` (mobile or landline), a
``CalledShowNumber`` the account owns when one is given, a known ``TtsCode``, a ``TtsParam``
that is a JSON object of strings under 250 characters covering the template's variables, with
no links or blacklisted words, ``PlayTimes`` 1-3, ``Volume`` 0-100, ``Speed`` -500..500,
``OutId`` at most 15 bytes, and the per-callee limits (1 a minute, 5 an hour, 20 a day),
answering the VMS ``isv.*`` codes with HTTP 200. It records every call (``calls``) and returns
a ``CallId``.

Call results: ``results`` maps a callee to the status code its call ends with (default
``200000``, listened to the end; e.g. ``200002`` busy, ``200004`` invalid number). Set
``fake.reports.url`` (the gateway's ``/callbacks/voice/aliyun/<account>/<token>``) and
``await fake.push_reports()`` — with ``progress=True`` the VoiceCallReport progress events
(calling, ringing) go first — or set ``auto_report``. Pushes are retried like the real ones.
Tests reach the state through ``app[FAKE_VOICE]``.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from aiohttp import web

from gateway.callbacks import FakeProvider
from plugins.aliyun.fake import RpcError, RpcRequest, require
from plugins.aliyun.fake_product import FakeProduct, ParamMessages, china_text, fill, product_app

log = logging.getLogger(__name__)

VERSION = "2017-05-25"
HOST = "dyvmsapi.aliyuncs.com"
DEMO_KEY_ID = "LTAI5tFakeVoiceKey01"
DEMO_KEY_SECRET = "fake-voice-secret-0123456789abcd"
DEMO_SHOW_NUMBER = "057100000001"
DEMO_TEMPLATES = {
    "TTS_100000001": "您好，${name}，${content}，请尽快处理。",
    "TTS_100000002": "您的验证码是${code}。",
}
PUBLIC_POOL_NUMBER = "057100009999"
TTS_PARAM_LIMIT = 250
_CALLEE = re.compile(r"(?:\+86|0086|86)?(1\d{10}|0\d{9,11})")
PARAM_MESSAGES = ParamMessages(
    invalid=("isv.INVALID_PARAMETERS", "参数异常"),
    missing="文本转语音模板参数缺失",
    link="变量不支持URL参数",
)
SMART_STATUS = {
    "200000": "ANSWERED",
    "200001": "ANSWERED",
    "200002": "USER_BUSY",
    "200003": "NO_ANSWER",
    "200004": "INVALID_NUMBER",
    "200005": "CALL_REJECTED",
    "200007": "UNAVAILABLE",
    "200010": "POWERED_OFF",
    "200011": "SUSPEND",
    "200012": "OPERATOR_BLOCK",
}
STATUS_MSG = {
    "200000": "用户听完",
    "200001": "用户未听完挂断",
    "200002": "用户忙",
    "200003": "振铃未接听",
    "200004": "空号",
    "200005": "无法接通",
    "200007": "不在服务区",
    "200010": "关机",
    "200011": "停机",
    "200012": "呼损",
}


class FakeCall(msgspec.Struct, frozen=True):
    """One call the fake placed."""

    call_id: str
    callee: str
    caller: str
    tts_code: str
    params: dict[str, str]
    text: str
    at: float
    out_id: str = ""


class FakeVoice(FakeProduct):
    """The fake's state: accounts, caller numbers, TTS templates, calls, results to report."""

    def __init__(
        self,
        *,
        keys: Mapping[str, str] | None = None,
        show_numbers: set[str] | None = None,
        templates: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        report_schedule: tuple[float, ...] = (60.0, 300.0, 600.0),
    ) -> None:
        super().__init__(
            HOST,
            keys or {DEMO_KEY_ID: DEMO_KEY_SECRET},
            clock=clock,
            report_schedule=report_schedule,
        )
        self.show_numbers: set[str] = set(show_numbers or {DEMO_SHOW_NUMBER})
        self.templates: dict[str, str] = dict(templates or DEMO_TEMPLATES)
        self.results: dict[str, str] = {}  # callee -> final status_code (default 200000)
        self.calls: list[FakeCall] = []
        self.gateway.add_action("SingleCallByTts", VERSION, self.single_call_by_tts)
        self.gateway.add_action("QueryCallDetailByCallId", VERSION, self.query_call_detail)

    # -- actions ----------------------------------------------------------------------------

    async def single_call_by_tts(self, rpc: RpcRequest) -> dict[str, Any]:
        p = rpc.params
        require(p, "CalledNumber", "TtsCode")
        callee = self._callee(p["CalledNumber"])
        show = p.get("CalledShowNumber")
        if show is not None and show not in self.show_numbers:
            raise RpcError("isv.DISPLAY_NUMBER_ILLEGAL", "号显不合法")
        template = self.templates.get(p["TtsCode"])
        if template is None:
            raise RpcError("isv.TTS_TEMPLATE_ILLEGAL", "TTS模板不合法")
        raw = p.get("TtsParam")
        if raw and len(raw) >= TTS_PARAM_LIMIT:
            raise RpcError("isv.PARAM_LENGTH_LIMIT", "参数长度受限")
        params = self.template_params(template, raw, PARAM_MESSAGES)
        self._playback(p)
        now = self.clock()
        refusal = self.windows.refusal(("callee", callee), now, minute=1, hour=5, day=20)
        if refusal and self.flow_control:
            raise RpcError("isv.BUSINESS_LIMIT_CONTROL", refusal)
        self.windows.count(("callee", callee), now)
        call_id = f"{random.randrange(10**11, 10**12)}^{random.randrange(10**10, 10**11)}"
        text = fill(template, params)
        self.calls.append(
            FakeCall(
                call_id,
                callee,
                show or PUBLIC_POOL_NUMBER,
                p["TtsCode"],
                params,
                text,
                now,
                p.get("OutId", ""),
            )
        )
        self.accepted()
        return {"Code": "OK", "Message": "OK", "CallId": call_id}

    async def query_call_detail(self, rpc: RpcRequest) -> dict[str, Any]:
        require(rpc.params, "CallId", "ProdId", "QueryDate")
        call = next((c for c in self.calls if c.call_id == rpc.params["CallId"]), None)
        if call is None:
            return {"Code": "OK", "Message": "OK", "Data": None}
        state = self.results.get(call.callee, "200000")
        detail = {"callee": call.callee, "caller": call.caller, "state": state}
        detail["gmtCreate"] = china_text(call.at)
        return {"Code": "OK", "Message": "OK", "Data": json.dumps(detail, ensure_ascii=False)}

    def _callee(self, value: str) -> str:
        if "," in value:
            raise RpcError("isv.INVALID_PARAMETERS", "参数异常：被叫号码只能填写一个")
        match = _CALLEE.fullmatch(value.strip())
        if match is None or match.group(1) in self.illegal_numbers:
            raise RpcError("isv.MOBILE_NUMBER_ILLEGAL", "号码格式非法")
        return match.group(1)

    @staticmethod
    def _playback(p: dict[str, str]) -> None:
        for name, low, high in (("PlayTimes", 1, 3), ("Volume", 0, 100), ("Speed", -500, 500)):
            if name in p:
                try:
                    value = int(p[name])
                except ValueError:
                    value = high + 1
                if not low <= value <= high:
                    raise RpcError("isv.INVALID_PARAMETERS", f"参数异常：{name}")
        if len(p.get("OutId", "").encode()) > 15:
            raise RpcError("isv.INVALID_PARAMETERS", "参数异常：OutId")

    # -- receipts (VoiceReport / VoiceCallReport, HTTP batch push) ---------------------------

    def report(self, call: FakeCall) -> dict[str, Any]:
        """The VoiceReport (call record) the real service would push for ``call``."""
        code = self.results.get(call.callee, "200000")
        answered = code in ("200000", "200001")
        ring, start = call.at + 2, call.at + 5
        end = start + 10 if answered else ring + 20
        return {
            "status_code": code,
            "smart_status_code": SMART_STATUS.get(code, "OTHER"),
            "status_msg": STATUS_MSG.get(code, "呼叫失败"),
            "callee": call.callee,
            "caller": call.caller,
            "duration": "10" if answered else "0",
            "originate_time": china_text(call.at),
            "ring_time": china_text(ring),
            "start_time": china_text(start) if answered else "",
            "end_time": china_text(end),
            "call_id": call.call_id,
            "out_id": call.out_id,
            "hangup_direction": "2" if answered else "",
            "voice_type": "voice",
        }

    def progress(self, call: FakeCall) -> list[dict[str, Any]]:
        """VoiceCallReport progress events of ``call`` (calling, then ringing)."""
        return [
            {
                "call_id": call.call_id,
                "status_code": code,
                "status_time": china_text(call.at + i),
                "out_id": call.out_id,
            }
            for i, code in enumerate(("200101", "200201"))
        ]

    async def push_reports(self, url: str | None = None, *, progress: bool = False) -> int:
        """Push the reports of every call not reported yet, in one batch; the HTTP status."""

        def items(pending: list[FakeCall]) -> list[dict[str, Any]]:
            events = [event for c in pending for event in self.progress(c)] if progress else []
            return events + [self.report(c) for c in pending]

        return await self.push_pending(url, self.calls, lambda c: c.call_id, items)


FAKE_VOICE = web.AppKey("fake_voice", FakeVoice)


def make_app(fake: FakeVoice | None = None) -> web.Application:
    """The fake voice service (``app[FAKE_VOICE]`` is its state)."""
    return product_app(fake or FakeVoice(), FAKE_VOICE)


def fake_provider() -> FakeProvider:
    """This fake as ``msggate fake-providers`` serves it, at ``/aliyun-voice``."""
    return FakeProvider(
        "aliyun-voice",
        make_app,
        f"Alibaba Cloud voice (dyvmsapi): AccessKey {DEMO_KEY_ID} / {DEMO_KEY_SECRET},"
        f" caller number {DEMO_SHOW_NUMBER}, TTS templates {', '.join(DEMO_TEMPLATES)}",
    )
