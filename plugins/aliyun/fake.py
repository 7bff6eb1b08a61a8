"""The reusable core of a fake Alibaba Cloud RPC product (docs/providers.md §4.5).

:class:`FakeRpcGateway` does what the real RPC gateway does before a product sees a request:
accept GET query or POST form, require every common parameter, look the AccessKey up, re-run
the §4.2 signature with its secret (constant-time compare), hold the timestamp to ±15 minutes,
refuse a nonce seen in the last 15 minutes, and dispatch on ``Action`` + ``Version``. Answers
are JSON when ``Format=JSON``, XML otherwise, errors shaped like the real ones (``RequestId``,
``HostId``, ``Code``, ``Message``, ``Recommend``; ``SignatureDoesNotMatch`` echoes the server's
string to sign, as Alibaba Cloud does).

A product fake registers its actions and keeps its own state::

    gateway = FakeRpcGateway("dysmsapi.aliyuncs.com", {"LTAI...": "secret"})
    gateway.add_action("SendSms", "2017-05-25", send_sms)   # async (RpcRequest) -> dict
    app = web.Application(); gateway.install(app)

An action raises :class:`RpcError` for a business error (HTTP 200 with a ``Code``, as the
products answer). Tests inject faults with :meth:`FakeRpcGateway.inject` — any code (throttling,
business codes), an HTTP 5xx, or a delay (a slow answer) — for the next matching requests.
``received`` lists every request that passed the gateway checks, ``refusals`` every one the
gateway refused. Over HTTP (for ``msggate fake-providers`` demos): ``GET /_fake/requests``,
``POST /_fake/faults`` with a :class:`Fault` as JSON.
"""

from __future__ import annotations

import asyncio
import calendar
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from xml.sax.saxutils import escape

import aiohttp
import msgspec
from aiohttp import web

from plugins.aliyun.errors import is_gateway_code
from plugins.aliyun.signature import (
    COMMON_PARAMS,
    SIGNATURE_METHOD,
    SIGNATURE_VERSION,
    TIMESTAMP_FORMAT,
    sign,
    string_to_sign,
)

log = logging.getLogger(__name__)

TIMESTAMP_WINDOW = 900.0  # seconds either side of the server's clock
NONCE_TTL = 900.0


class RpcRequest(msgspec.Struct, frozen=True):
    """A request that passed the gateway: every parameter (common ones included), decoded."""

    action: str
    version: str
    access_key_id: str
    method: str
    params: dict[str, str]
    at: float


class RpcError(Exception):
    """Raised by an action: answer ``code``/``message`` with HTTP ``status`` (200 = business)."""

    def __init__(self, code: str, message: str, status: int = 200) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def require(params: Mapping[str, str], *names: str) -> None:
    """Refuse a request missing any of ``names`` (or giving it empty), as the service does."""
    for name in names:
        if not params.get(name):
            raise RpcError(f"Missing{name}", f"{name} is mandatory for this action.", 400)


class Fault(msgspec.Struct, kw_only=True):
    """A fault for the next ``times`` matching requests (``times=None``: every one).

    A request matches when its action is ``action`` (any when None) and it has every parameter
    of ``when`` with that value (``when={"PhoneNumbers": "13800000001"}``: a fault for one
    recipient, whatever else is sent). ``delay`` seconds pass first (a slow answer); then
    ``code`` is answered (HTTP ``status``, by default 400 for gateway codes and 200 for business
    ones), or with only ``status`` a bare server error (500 InternalError, 503
    ServiceUnavailable); with neither, the request is
    served normally after the delay.
    """

    code: str | None = None
    message: str = "injected by the fake"
    status: int | None = None
    delay: float = 0.0
    action: str | None = None
    when: dict[str, str] = {}
    times: int | None = 1


ActionHandler = Callable[[RpcRequest], Awaitable[dict[str, Any]]]

_SERVER_ERRORS = {500: "InternalError", 502: "BadGateway", 503: "ServiceUnavailable"}
_SERVER_MESSAGES = {
    500: "The request processing has failed due to some unknown error.",
    503: "The request has failed due to a temporary failure of the server.",
}


def _to_xml(name: str, value: Any) -> str:
    if isinstance(value, dict):
        inner = "".join(_to_xml(k, v) for k, v in value.items())
    elif isinstance(value, list):
        inner = "".join(_to_xml(name[:-1] if name.endswith("s") else "item", v) for v in value)
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    else:
        inner = escape(str(value))
    return f"<{name}>{inner}</{name}>"


def parse_timestamp(value: str) -> float | None:
    """Seconds since the epoch for ``YYYY-MM-DDThh:mm:ssZ``, or None if malformed."""
    try:
        return float(calendar.timegm(time.strptime(value, TIMESTAMP_FORMAT)))
    except ValueError:
        return None


class FakeRpcGateway:
    """The gateway checks of one Alibaba Cloud product host, and its action table."""

    def __init__(
        self,
        host: str,
        keys: Mapping[str, str],
        *,
        window: float = TIMESTAMP_WINDOW,
        nonce_ttl: float = NONCE_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host = host
        self.keys = dict(keys)
        self.window = window
        self.nonce_ttl = nonce_ttl
        self.clock = clock
        self.actions: dict[tuple[str, str], ActionHandler] = {}
        self.faults: list[Fault] = []
        self.received: list[RpcRequest] = []
        self.refusals: list[tuple[str, str]] = []  # (code, action)
        self._nonces: dict[tuple[str, str], float] = {}

    def add_action(self, action: str, version: str, handler: ActionHandler) -> None:
        self.actions[(action, version)] = handler

    def inject(self, fault: Fault) -> None:
        """Queue ``fault`` for the next matching requests (in order of injection)."""
        self.faults.append(fault)

    def install(self, app: web.Application) -> None:
        """Serve the product at ``/`` of ``app`` (GET and POST) and the control routes."""
        app.router.add_route("GET", "/", self.handle)
        app.router.add_route("POST", "/", self.handle)
        app.router.add_get("/_fake/requests", self._list_requests)
        app.router.add_post("/_fake/faults", self._add_fault)

    # -- the gateway ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        params = {k: v for k, v in request.query.items()}
        if request.method == "POST":
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        fmt = params.get("Format", "XML").upper()
        try:
            rpc = self._admit(request.method, params)
            body = await self._serve(rpc)
        except RpcError as exc:
            action = params.get("Action", "")
            if is_gateway_code(exc.code) or exc.status >= 400:
                self.refusals.append((exc.code, action))
            return self._error(exc, fmt)
        body.setdefault("RequestId", self._request_id())
        body.setdefault("Code", "OK")
        body.setdefault("Message", "OK")
        return self._answer(200, f"{params['Action']}Response", body, fmt)

    def _admit(self, method: str, params: dict[str, str]) -> RpcRequest:
        require(params, *COMMON_PARAMS, "Signature")
        if params["SignatureMethod"] != SIGNATURE_METHOD:
            raise RpcError(
                "InvalidSignatureMethod.Malformed", "Specified signature method is not valid.", 400
            )
        if params["SignatureVersion"] != SIGNATURE_VERSION:
            raise RpcError(
                "InvalidSignatureVersion.Malformed",
                "Specified signature version is not valid.",
                400,
            )
        key_id = params["AccessKeyId"]
        secret = self.keys.get(key_id)
        if secret is None:
            raise RpcError("InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404)
        at = parse_timestamp(params["Timestamp"])
        if at is None:
            raise RpcError(
                "InvalidTimeStamp.Format",
                "Specified time stamp or date value is not well formatted.",
                400,
            )
        expected = sign(method, params, secret)
        if not hmac.compare_digest(expected.encode(), params["Signature"].encode()):
            raise RpcError(
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation. server string to sign"
                f" is:{string_to_sign(method, params)}",
                400,
            )
        now = self.clock()
        if abs(now - at) > self.window:
            raise RpcError(
                "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", 400
            )
        self._forget_nonces(now)
        nonce = (key_id, params["SignatureNonce"])
        if nonce in self._nonces:
            raise RpcError("SignatureNonceUsed", "Specified signature nonce was used already.", 400)
        self._nonces[nonce] = now
        rpc = RpcRequest(params["Action"], params["Version"], key_id, method, params, now)
        self.received.append(rpc)
        return rpc

    def _forget_nonces(self, now: float) -> None:
        if len(self._nonces) < 1000:
            return
        self._nonces = {k: t for k, t in self._nonces.items() if now - t <= self.nonce_ttl}

    async def _serve(self, rpc: RpcRequest) -> dict[str, Any]:
        fault = self._take_fault(rpc)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.code is not None:
                status = fault.status or (400 if is_gateway_code(fault.code) else 200)
                raise RpcError(fault.code, fault.message, status)
            if fault.status is not None:
                code = _SERVER_ERRORS.get(fault.status, "InternalError")
                message = _SERVER_MESSAGES.get(fault.status, fault.message)
                raise RpcError(code, message, fault.status)
        handler = self.actions.get((rpc.action, rpc.version))
        if handler is None:
            raise RpcError(
                "InvalidAction.NotFound",
                "Specified api is not found, please check your url and method.",
                404,
            )
        return await handler(rpc)

    def _take_fault(self, rpc: RpcRequest) -> Fault | None:
        for fault in self.faults:
            if fault.action not in (None, rpc.action):
                continue
            if any(rpc.params.get(k) != v for k, v in fault.when.items()):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
            return fault
        return None

    # -- answers ----------------------------------------------------------------------------

    @staticmethod
    def _request_id() -> str:
        return str(uuid.uuid4()).upper()

    def _error(self, exc: RpcError, fmt: str) -> web.Response:
        body = {
            "RequestId": self._request_id(),
            "HostId": self.host,
            "Code": exc.code,
            "Message": exc.message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={exc.code}",
        }
        return self._answer(exc.status, "Error", body, fmt)

    @staticmethod
    def _answer(status: int, root: str, body: dict[str, Any], fmt: str) -> web.Response:
        if fmt == "JSON":
            return web.json_response(body, status=status)
        xml = "<?xml version='1.0' encoding='UTF-8'?>" + _to_xml(root, body)
        return web.Response(text=xml, status=status, content_type="text/xml")

    # -- control routes (demos) -------------------------------------------------------------

    async def _list_requests(self, request: web.Request) -> web.Response:
        shown = [
            {"action": r.action, "version": r.version, "access_key_id": r.access_key_id, "at": r.at}
            for r in self.received[-100:]
        ]
        return web.json_response({"requests": shown, "refusals": self.refusals[-100:]})

    async def _add_fault(self, request: web.Request) -> web.Response:
        try:
            fault = msgspec.json.decode(await request.read(), type=Fault)
        except msgspec.DecodeError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.inject(fault)
        return web.json_response({"queued": len(self.faults)})


class FlowWindows:
    """Per-number flow control as the communication products count it (doc 44335).

    Minute and hour windows are natural minutes and hours; the day window is a rolling 24
    hours. Only accepted requests count (:meth:`count` after the request is accepted).
    """

    def __init__(self) -> None:
        self._times: dict[tuple[str, ...], list[float]] = {}

    def refusal(
        self,
        key: tuple[str, ...],
        now: float,
        *,
        minute: int | None = None,
        hour: int | None = None,
        day: int | None = None,
    ) -> str | None:
        """The ``isv.BUSINESS_LIMIT_CONTROL`` message if one more would pass a limit."""
        times = self._times.get(key, [])
        if minute is not None and sum(1 for t in times if t // 60 == now // 60) >= minute:
            return f"触发分钟级流控Permits:{minute}"
        if hour is not None and sum(1 for t in times if t // 3600 == now // 3600) >= hour:
            return f"触发小时级流控Permits:{hour}"
        if day is not None and sum(1 for t in times if now - t < 86400) >= day:
            return f"触发天级流控Permits:{day}"
        return None

    def count(self, key: tuple[str, ...], now: float) -> None:
        times = self._times.setdefault(key, [])
        times.append(now)
        if len(times) > 1000:
            del times[: len(times) - 1000]


class Push(msgspec.Struct, frozen=True):
    """One receipt push attempt and the receiver's HTTP status (0 = no answer; 599 = HTTP 200
    without the documented ``{"code": <number>}`` reply)."""

    url: str
    reports: int
    status: int
    attempt: int


class ReportPusher:
    """Receipts the way Alibaba Cloud's "HTTP batch push" sends them (docs/providers.md §5.6).

    POSTs a JSON array to ``url``; a push not answered HTTP 200 with a numeric ``code`` is
    retried after each delay of ``schedule`` (1, 5 and 10 minutes for the real service), then
    dropped. Every attempt is recorded in ``pushes``.
    """

    def __init__(self, schedule: tuple[float, ...] = (60.0, 300.0, 600.0)) -> None:
        self.url: str | None = None
        self.schedule = schedule
        self.pushes: list[Push] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http: aiohttp.ClientSession | None = None

    async def push(self, reports: list[dict[str, Any]], url: str | None = None) -> int:
        """Push ``reports`` now; on failure keep retrying in the background. The HTTP status."""
        url = url or self.url
        if not url or not reports:
            return 0
        status = await self._post(url, reports, 1)
        if status != 200:
            self.spawn(self._retry(url, reports))
        return status

    def spawn(self, coroutine: Any) -> None:
        """Run ``coroutine`` in the background until :meth:`close`."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retry(self, url: str, reports: list[dict[str, Any]]) -> None:
        for attempt, wait in enumerate(self.schedule, start=2):
            await asyncio.sleep(wait)
            if await self._post(url, reports, attempt) == 200:
                return
        log.info("fake receipts: %d reports dropped after %d pushes", len(reports), attempt)

    async def _post(self, url: str, reports: list[dict[str, Any]], attempt: int) -> int:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        status = 0
        try:
            async with self._http.post(
                url, json=reports, timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                status = response.status
                if status == 200:
                    answer = await response.json(content_type=None)
                    if not (isinstance(answer, dict) and isinstance(answer.get("code"), int)):
                        status = 599
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("fake receipts: push to %s failed: %r", url, exc)
        self.pushes.append(Push(url, len(reports), status, attempt))
        return status

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
