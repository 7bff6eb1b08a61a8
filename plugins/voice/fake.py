"""A fake Alibaba Cloud voice service (dyvmsapi 2017-05-25) for tests and demos.

On the shared gateway core (:mod:`plugins.aliyun.fake`: signature, timestamp, nonce, AccessKey,
faults) it serves ``SingleCallByTts`` and ``QueryCallDetailByCallId`` and checks what the real
service checks (specs/channels.md §6): exactly one ``CalledNumber`` (mobile or landline), a
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

import datetime as dt
import json
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import msgspec
from aiohttp import web

from plugins.aliyun.fake import FakeRpcGateway, FlowWindows, ReportPusher, RpcError, RpcRequest

log = logging.getLogger(__name__)

VERSION = "2017-05-25"
HOST = "dyvmsapi.aliyuncs.com"
CHINA = dt.timezone(dt.timedelta(hours=8))
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
_VARIABLE = re.compile(r"\$\{(\w+)\}")
_LINK = re.compile(r"https?://|www\.", re.IGNORECASE)
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


def _china(at: float) -> str:
    return dt.datetime.fromtimestamp(at, CHINA).strftime("%Y-%m-%d %H:%M:%S")


class FakeVoice:
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
        self.clock = clock
        self.gateway = FakeRpcGateway(
            HOST, keys or {DEMO_KEY_ID: DEMO_KEY_SECRET}, clock=lambda: self.clock()
        )
        self.show_numbers: set[str] = set(show_numbers or {DEMO_SHOW_NUMBER})
        self.templates: dict[str, str] = dict(templates or DEMO_TEMPLATES)
        self.blocked_words: set[str] = {"违禁"}
        self.illegal_numbers: set[str] = set()
        self.results: dict[str, str] = {}  # callee -> final status_code (default 200000)
        self.calls: list[FakeCall] = []
        self.reports = ReportPusher(report_schedule)
        self.auto_report = False
        self.windows = FlowWindows()
        self.flow_control = True  # per-callee limits; off for tests that call one number a lot
        self._reported: set[str] = set()
        self.gateway.add_action("SingleCallByTts", VERSION, self.single_call_by_tts)
        self.gateway.add_action("QueryCallDetailByCallId", VERSION, self.query_call_detail)

    # -- actions ----------------------------------------------------------------------------

    async def single_call_by_tts(self, rpc: RpcRequest) -> dict[str, Any]:
        p = rpc.params
        for name in ("CalledNumber", "TtsCode"):
            if not p.get(name):
                raise RpcError(f"Missing{name}", f"{name} is mandatory for this action.", 400)
        callee = self._callee(p["CalledNumber"])
        show = p.get("CalledShowNumber")
        if show is not None and show not in self.show_numbers:
            raise RpcError("isv.DISPLAY_NUMBER_ILLEGAL", "号显不合法")
        template = self.templates.get(p["TtsCode"])
        if template is None:
            raise RpcError("isv.TTS_TEMPLATE_ILLEGAL", "TTS模板不合法")
        params = self._tts_params(template, p.get("TtsParam"))
        self._playback(p)
        now = self.clock()
        refusal = self.windows.refusal(("callee", callee), now, minute=1, hour=5, day=20)
        if refusal and self.flow_control:
            raise RpcError("isv.BUSINESS_LIMIT_CONTROL", refusal)
        self.windows.count(("callee", callee), now)
        call_id = f"{random.randrange(10**11, 10**12)}^{random.randrange(10**10, 10**11)}"
        text = _VARIABLE.sub(lambda m: params[m.group(1)], template)
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
        if self.auto_report:
            self.reports.spawn(self.push_reports())
        return {"Code": "OK", "Message": "OK", "CallId": call_id}

    async def query_call_detail(self, rpc: RpcRequest) -> dict[str, Any]:
        for name in ("CallId", "ProdId", "QueryDate"):
            if not rpc.params.get(name):
                raise RpcError(f"Missing{name}", f"{name} is mandatory for this action.", 400)
        call = next((c for c in self.calls if c.call_id == rpc.params["CallId"]), None)
        if call is None:
            return {"Code": "OK", "Message": "OK", "Data": None}
        state = self.results.get(call.callee, "200000")
        detail = {"callee": call.callee, "caller": call.caller, "state": state}
        detail["gmtCreate"] = _china(call.at)
        return {"Code": "OK", "Message": "OK", "Data": json.dumps(detail, ensure_ascii=False)}

    def _callee(self, value: str) -> str:
        if "," in value:
            raise RpcError("isv.INVALID_PARAMETERS", "参数异常：被叫号码只能填写一个")
        match = _CALLEE.fullmatch(value.strip())
        if match is None or match.group(1) in self.illegal_numbers:
            raise RpcError("isv.MOBILE_NUMBER_ILLEGAL", "号码格式非法")
        return match.group(1)

    def _tts_params(self, template: str, raw: str | None) -> dict[str, str]:
        wanted = _VARIABLE.findall(template)
        params: Any = {}
        if raw:
            if len(raw) >= TTS_PARAM_LIMIT:
                raise RpcError("isv.PARAM_LENGTH_LIMIT", "参数长度受限")
            try:
                params = json.loads(raw)
            except ValueError:
                raise RpcError("isv.INVALID_PARAMETERS", "参数异常") from None
            if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
                raise RpcError("isv.INVALID_PARAMETERS", "参数异常")
        if any(name not in params for name in wanted):
            raise RpcError("isv.TEMPLATE_MISSING_PARAMETERS", "文本转语音模板参数缺失")
        for value in params.values():
            if _LINK.search(value):
                raise RpcError("isv.PARAM_NOT_SUPPORT_URL", "变量不支持URL参数")
            if any(word in value for word in self.blocked_words):
                raise RpcError("isv.BLACK_KEY_CONTROL_LIMIT", "模板变量中存在黑名单关键字")
        return {name: params[name] for name in wanted}

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
            "originate_time": _china(call.at),
            "ring_time": _china(ring),
            "start_time": _china(start) if answered else "",
            "end_time": _china(end),
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
                "status_time": _china(call.at + i),
                "out_id": call.out_id,
            }
            for i, code in enumerate(("200101", "200201"))
        ]

    async def push_reports(self, url: str | None = None, *, progress: bool = False) -> int:
        """Push the reports of every call not reported yet, in one batch; the HTTP status."""
        if not (url or self.reports.url):
            return 0
        pending = [c for c in self.calls if c.call_id not in self._reported]
        self._reported.update(c.call_id for c in pending)
        items: list[dict[str, Any]] = []
        if progress:
            items += [event for c in pending for event in self.progress(c)]
        items += [self.report(c) for c in pending]
        return await self.reports.push(items, url)

    async def close(self) -> None:
        await self.reports.close()


FAKE_VOICE = web.AppKey("fake_voice", FakeVoice)


def make_app(fake: FakeVoice | None = None) -> web.Application:
    """The fake voice service (``app[FAKE_VOICE]`` is its state)."""
    app = web.Application()
    state = fake or FakeVoice()
    app[FAKE_VOICE] = state
    state.gateway.install(app)

    async def receipts_now(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        url = body.get("url") if isinstance(body, dict) else None
        return web.json_response({"status": await state.push_reports(url)})

    async def lifetime(app: web.Application) -> AsyncIterator[None]:
        yield
        await state.close()

    app.router.add_post("/_fake/receipts", receipts_now)
    app.cleanup_ctx.append(lifetime)
    return app
