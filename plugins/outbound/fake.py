"""A fake of Alibaba Cloud's robot-call APIs, on the shared fake RPC gateway (plugins.aliyun.fake).

One application serves both APIs of the outbound channel (dispatching on Action + Version, so
one endpoint will do for either kind of account):

- dyvms ``BatchRobotSmartCall`` (2017-05-25) and ``QueryRobotv2AllList``;
- aiccs ``RobotCall`` (2019-10-15) and ``ListAiccsRobot``.

Beyond the gateway checks (signature, timestamp, nonce, AccessKey: :class:`FakeRpcGateway`) it
checks what the products document: the caller number is one of the account's
(``isv.DISPLAY_NUMBER_ILLEGAL``), the company name is the registered one, the script exists,
callees are mainland numbers (``isv.MOBILE_NUMBER_ILLEGAL``; at most 100 per task,
``isv.MOBILE_COUNT_OVER_LIMIT``), ``TaskName`` is 1-30 characters, ``TtsParamHead``/``TtsParam``
are aligned JSON, ``Params`` is a JSON object of at most 512 bytes (``Parameter.Error``), and
optionally the per-callee limit of one call a minute (``isv.BUSINESS_LIMIT_CONTROL``). Where
Alibaba Cloud publishes no code for a refusal (unknown company name or script) it answers
``isv.INVALID_PARAMETERS`` [UNCONFIRMED].

After a call is placed it can push the call's result to ``receipt_url`` the way Alibaba Cloud
does: a JSON array (VoiceReport for dyvms with ``out_id`` ``ALICOM_SMART_SAAS^<TaskId>^...``,
RobotCallReportAiccs for aiccs), the result per callee from ``results`` (default answered).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import count
from typing import Any

import aiohttp
from aiohttp import web

from gateway.callbacks import FakeProvider
from plugins.aliyun.fake import FakeRpcGateway, RpcError, RpcRequest

log = logging.getLogger(__name__)

DYVMS, AICCS = "2017-05-25", "2019-10-15"
NUMBER = re.compile(r"1[3-9]\d{9}|0[1-9]\d{8,10}")
DEMO_KEY_ID, DEMO_KEY_SECRET = "LTAI5tDemoOutbound", "msggate-demo-outbound-secret"
DEMO_COMPANY, DEMO_CALLER, DEMO_SCRIPT = "示例科技有限公司", "057100000000", "1000001234"
CHINA = dt.timezone(dt.timedelta(hours=8))


@dataclass
class PlacedCall:
    api: str  # "dyvms" or "aiccs"
    provider_id: str  # TaskId or the call id
    callee: str
    script: str
    variables: dict[str, str]
    params: dict[str, str]


@dataclass
class OutboundFake:
    """The fake's state: registered company, numbers and scripts, placed calls, receipt pushes."""

    gateway: FakeRpcGateway
    companies: set[str] = field(default_factory=set)
    callers: set[str] = field(default_factory=set)
    scripts: set[str] = field(default_factory=set)
    calls: list[PlacedCall] = field(default_factory=list)
    results: dict[str, str] = field(default_factory=dict)  # callee -> status code
    receipt_url: str | None = None
    receipt_delay: float = 0.0
    pushes: list[tuple[int, Any]] = field(default_factory=list)  # (HTTP status, answer)
    per_callee_per_minute: int | None = None
    callee_faults: dict[str, tuple[str | None, str, int, float]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: count(134523))
    _recent: dict[str, deque[float]] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def add_account(
        self, key_id: str, secret: str, company: str, caller: str, scripts: set[str]
    ) -> None:
        self.gateway.keys[key_id] = secret
        self.companies.add(company)
        self.callers.add(caller)
        self.scripts |= scripts

    def fail_callee(
        self,
        callee: str,
        code: str | None = None,
        message: str = "",
        *,
        status: int = 200,
        delay: float = 0.0,
    ) -> None:
        """Answer every call to ``callee`` with ``code`` after ``delay`` (no code: stall only)."""
        self.callee_faults[callee] = (code, message, status, delay)

    def calls_to(self, callee: str) -> list[PlacedCall]:
        return [c for c in self.calls if c.callee == callee]

    async def settle(self) -> None:
        """Wait for the receipt pushes in flight (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- checks shared by both APIs -------------------------------------------------------

    def _caller(self, params: dict[str, str], many: bool) -> None:
        numbers = params.get("CalledShowNumber", "")
        if not numbers:
            raise RpcError("MissingCalledShowNumber", "CalledShowNumber is mandatory.", 400)
        listed = numbers.split(",") if many else [numbers]
        if not all(n in self.callers for n in listed):
            raise RpcError("isv.DISPLAY_NUMBER_ILLEGAL", "号显不合法")

    async def _callee_fault(self, callees: list[str]) -> None:
        for callee in callees:
            if callee in self.callee_faults:
                code, message, status, delay = self.callee_faults[callee]
                await asyncio.sleep(delay)
                if code is not None:
                    raise RpcError(code, message, status)

    def _throttle(self, callee: str) -> None:
        if self.per_callee_per_minute is None:
            return
        now = time.monotonic()
        recent = self._recent.setdefault(callee, deque())
        while recent and recent[0] <= now - 60:
            recent.popleft()
        if len(recent) >= self.per_callee_per_minute:
            raise RpcError(
                "isv.BUSINESS_LIMIT_CONTROL", f"触发分钟级流控Permits:{self.per_callee_per_minute}"
            )
        recent.append(now)

    def _script(self, script: str, name: str) -> None:
        if not script:
            raise RpcError(f"Missing{name}", f"{name} is mandatory.", 400)
        if script not in self.scripts:
            raise RpcError("isv.INVALID_PARAMETERS", f"{name} {script} does not exist")

    # -- dyvms ----------------------------------------------------------------------------

    async def batch_robot_smart_call(self, rpc: RpcRequest) -> dict[str, Any]:
        p = rpc.params
        self._caller(p, many=True)
        if p.get("IsSelfLine") != "true":
            corp = p.get("CorpName", "")
            if not corp:
                raise RpcError("MissingCorpName", "CorpName is mandatory.", 400)
            if corp not in self.companies:
                raise RpcError("isv.INVALID_PARAMETERS", "CorpName 与资质公司名称不一致")
        callees = [n for n in p.get("CalledNumber", "").split(",") if n]
        if not callees:
            raise RpcError("MissingCalledNumber", "CalledNumber is mandatory.", 400)
        if len(callees) > 100:
            raise RpcError("isv.MOBILE_COUNT_OVER_LIMIT", "被叫号码数量超过限制")
        if not all(NUMBER.fullmatch(n) for n in callees):
            raise RpcError("isv.MOBILE_NUMBER_ILLEGAL", "号码格式非法")
        await self._callee_fault(callees)
        self._script(p.get("DialogId", ""), "DialogId")
        name = p.get("TaskName", "")
        if not name:
            raise RpcError("MissingTaskName", "TaskName is mandatory.", 400)
        if len(name) > 30:
            raise RpcError("isv.INVALID_PARAMETERS", "TaskName 长度超过 30")
        rows = _tts_rows(p, callees)
        for callee in callees:
            self._throttle(callee)
        task = str(next(self._ids))
        for callee in callees:
            call = PlacedCall("dyvms", task, callee, p["DialogId"], rows.get(callee, {}), p)
            self.calls.append(call)
            self._push_later(call)
        return {"TaskId": task}

    async def query_robot_list(self, rpc: RpcRequest) -> dict[str, Any]:
        robots = [
            {"id": int(s), "robotName": f"话术 {s}", "robotType": "CUSTOM"} for s in self.scripts
        ]
        return {"Data": json.dumps(robots, ensure_ascii=False)}

    # -- aiccs ----------------------------------------------------------------------------

    async def robot_call(self, rpc: RpcRequest) -> dict[str, Any]:
        p = rpc.params
        self._caller(p, many=False)
        callee = p.get("CalledNumber", "")
        if not callee:
            raise RpcError("MissingCalledNumber", "CalledNumber is mandatory.", 400)
        if not NUMBER.fullmatch(callee):
            raise RpcError("Parameter.Error", "Parameter error: CalledNumber", 400)
        await self._callee_fault([callee])
        self._script(p.get("RobotId", ""), "RobotId")
        out = p.get("OutId")
        if out is not None and not 1 <= len(out.encode()) <= 15:
            raise RpcError("Parameter.Error", "Parameter error: OutId must be 1-15 bytes", 400)
        variables: dict[str, str] = {}
        if "Params" in p:
            if len(p["Params"].encode()) > 512:
                raise RpcError("Parameter.Error", "Parameter error: Params over 512 bytes", 400)
            try:
                variables = json.loads(p["Params"])
            except ValueError:
                variables = None  # type: ignore[assignment]
            if not isinstance(variables, dict):
                raise RpcError("Parameter.Error", "Parameter error: Params must be JSON", 400)
        for flag in ("RecordFlag", "EarlyMediaAsr"):
            if p.get(flag, "false") not in ("true", "false"):
                raise RpcError("Parameter.Error", f"Parameter error: {flag}", 400)
        self._throttle(callee)
        call_id = f"{next(self._ids)}^{next(self._ids)}"
        call = PlacedCall("aiccs", call_id, callee, p["RobotId"], variables, p)
        self.calls.append(call)
        self._push_later(call)
        return {"Data": call_id}

    async def list_robots(self, rpc: RpcRequest) -> dict[str, Any]:
        robots = [
            {"Id": int(s), "RobotName": f"话术 {s}", "RobotType": "CUSTOM"} for s in self.scripts
        ]
        return {"Data": robots, "Success": True}

    # -- receipts -------------------------------------------------------------------------

    def report(self, call: PlacedCall) -> dict[str, Any]:
        """The receipt Alibaba Cloud would push for ``call``."""
        status = self.results.get(call.callee, "200000")
        answered = status in ("200000", "200001")
        end = dt.datetime.now(CHINA)
        if call.api == "aiccs":
            ms = int(end.timestamp() * 1000)
            info = {
                "duration": 9 if answered else 0,
                "calledNo": call.callee,
                "code": int(status),
                "callingNo": call.params.get("CalledShowNumber"),
                "startTime": ms - 9000,
                "endTime": ms,
                "direction": 0,
            }
            return {
                "callId": call.provider_id,
                "data": {"output": {"tags": ""}, "info": info},
                "robotId": call.script,
                "type": "finish",
            }
        return {
            "call_id": f"{call.provider_id}^{len(self.calls)}",
            "out_id": f"ALICOM_SMART_SAAS^{call.provider_id}^{len(self.calls)}",
            "status_code": status,
            "smart_status_code": "ANSWERED" if answered else "NO_ANSWER",
            "callee": call.callee,
            "caller": call.params.get("CalledShowNumber", "").split(",")[0],
            "duration": "9" if answered else "0",
            "end_time": end.strftime("%Y-%m-%d %H:%M:%S"),
            "status_msg": "执行完成",
            "dialog_id": call.script,
            "voice_type": "voice",
        }

    def _push_later(self, call: PlacedCall) -> None:
        if self.receipt_url is None:
            return
        task = asyncio.get_running_loop().create_task(self._push(self.receipt_url, call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push(self, url: str, call: PlacedCall) -> None:
        await asyncio.sleep(self.receipt_delay)
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.post(url, json=[self.report(call)]) as response,
            ):
                self.pushes.append((response.status, await response.json(content_type=None)))
        except (aiohttp.ClientError, ValueError) as exc:
            self.pushes.append((0, repr(exc)))


def _tts_rows(params: dict[str, str], callees: list[str]) -> dict[str, dict[str, str]]:
    """``TtsParamHead`` x ``TtsParam`` as variables per callee; refuse misaligned JSON."""
    if "TtsParam" not in params and "TtsParamHead" not in params:
        return {}
    try:
        head = json.loads(params.get("TtsParamHead", "[]"))
        rows = json.loads(params.get("TtsParam", "[]"))
    except ValueError:
        raise RpcError("isv.INVALID_JSON_PARAM", "TtsParam/TtsParamHead 不是合法的 JSON") from None
    if not isinstance(head, list) or not all(isinstance(h, str) for h in head):
        raise RpcError("isv.INVALID_JSON_PARAM", "TtsParamHead 必须是字符串数组")
    found: dict[str, dict[str, str]] = {}
    for row in rows if isinstance(rows, list) else [None]:
        values = row.get("params") if isinstance(row, dict) else None
        number = row.get("number") if isinstance(row, dict) else None
        if not isinstance(values, list) or len(values) != len(head) or number not in callees:
            raise RpcError("isv.INVALID_JSON_PARAM", "TtsParam 与 TtsParamHead 不匹配")
        found[number] = dict(zip(head, values, strict=True))
    return found


OUTBOUND_FAKE = web.AppKey("outbound_fake", OutboundFake)


async def _set_receipts(request: web.Request) -> web.Response:
    """Demos: ``{"url": "<receipt URL>", "results": {"<callee>": "200002"}, "delay": 1.0}``."""
    fake = request.app[OUTBOUND_FAKE]
    try:
        body = await request.json()
        fake.receipt_url = body.get("url")
        fake.results.update({str(k): str(v) for k, v in body.get("results", {}).items()})
        fake.receipt_delay = float(body.get("delay", fake.receipt_delay))
    except (ValueError, TypeError, AttributeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"url": fake.receipt_url, "results": fake.results})


def make_app(fake: OutboundFake | None = None) -> web.Application:
    """The fake robot-call APIs; without ``fake``, one demo account (see the DEMO_* values)."""
    if fake is None:
        fake = OutboundFake(FakeRpcGateway("dyvmsapi.aliyuncs.com", {}))
        fake.add_account(DEMO_KEY_ID, DEMO_KEY_SECRET, DEMO_COMPANY, DEMO_CALLER, {DEMO_SCRIPT})
    gateway = fake.gateway
    gateway.add_action("BatchRobotSmartCall", DYVMS, fake.batch_robot_smart_call)
    gateway.add_action("QueryRobotv2AllList", DYVMS, fake.query_robot_list)
    gateway.add_action("RobotCall", AICCS, fake.robot_call)
    gateway.add_action("ListAiccsRobot", AICCS, fake.list_robots)
    app = web.Application()
    app[OUTBOUND_FAKE] = fake
    gateway.install(app)
    app.router.add_post("/_fake/receipts", _set_receipts)

    async def stop_pushes(_: web.Application) -> None:
        for task in list(fake._tasks):
            task.cancel()

    app.on_cleanup.append(stop_pushes)
    return app


def fake_provider() -> FakeProvider:
    return FakeProvider(
        "outbound",
        make_app,
        f"Aliyun BatchRobotSmartCall + aiccs RobotCall; AccessKey {DEMO_KEY_ID} /"
        f" {DEMO_KEY_SECRET}, company {DEMO_COMPANY}, caller {DEMO_CALLER}, script {DEMO_SCRIPT}",
    )
