"""What the fake communication products (SMS, voice) share, on top of :mod:`plugins.aliyun.fake`.

:class:`FakeProduct` holds the state every such fake keeps — its :class:`~plugins.aliyun.fake.
FakeRpcGateway` (signature, AccessKey, faults), a settable clock, blacklisted words and refused
numbers, per-number flow control (:class:`~plugins.aliyun.fake.FlowWindows`) and receipt pushes
(:class:`~plugins.aliyun.fake.ReportPusher`) — and checks template parameters the way the
products do (:meth:`FakeProduct.template_params`). A product subclasses it, registers its
actions on ``self.gateway`` and implements ``push_reports``; :func:`product_app` serves it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from plugins.aliyun.fake import FakeRpcGateway, FlowWindows, ReportPusher, RpcError
from plugins.aliyun.params import VARIABLE
from plugins.aliyun.receipts import CHINA

log = logging.getLogger(__name__)

R = TypeVar("R")

LINK = re.compile(r"https?://|www\.", re.IGNORECASE)


class ParamMessages(msgspec.Struct, frozen=True):
    """What a product answers for bad template parameters: the code and message of a value
    that is not a JSON object of strings, and the messages of a missing variable
    (``isv.TEMPLATE_MISSING_PARAMETERS``) and of a link (``isv.PARAM_NOT_SUPPORT_URL``)."""

    invalid: tuple[str, str]
    missing: str
    link: str


def china_text(at: float) -> str:
    """A Unix time as the products write times in receipts: Beijing time, to the second."""
    return dt.datetime.fromtimestamp(at, CHINA).strftime("%Y-%m-%d %H:%M:%S")


def fill(template: str, params: Mapping[str, str]) -> str:
    """The template's text as the product renders it (every variable is given)."""
    return VARIABLE.sub(lambda m: params[m.group(1)], template)


class FakeProduct:
    """The state every fake communication product keeps; see the module."""

    def __init__(
        self,
        host: str,
        keys: Mapping[str, str],
        *,
        clock: Callable[[], float],
        report_schedule: tuple[float, ...],
    ) -> None:
        self.clock = clock
        self.gateway = FakeRpcGateway(host, keys, clock=lambda: self.clock())
        self.blocked_words: set[str] = {"违禁"}
        self.illegal_numbers: set[str] = set()
        self.reports = ReportPusher(report_schedule)
        self.auto_report = False
        self.windows = FlowWindows()
        self.flow_control = True  # per-number limits; off for tests that send one number a lot
        self._reported: set[Hashable] = set()

    def accepted(self) -> None:
        """Call after each accepted send: pushes its receipts when ``auto_report`` is set."""
        if self.auto_report:
            self.reports.spawn(self.push_reports())

    async def push_reports(self, url: str | None = None) -> int:
        """Push the receipts not pushed yet; the HTTP status (0 when nothing was pushed)."""
        raise NotImplementedError

    async def push_pending(
        self,
        url: str | None,
        records: Iterable[R],
        key: Callable[[R], Hashable],
        items: Callable[[list[R]], list[dict[str, Any]]],
    ) -> int:
        """Push the ``items`` of the records whose ``key`` was not reported yet, in one batch,
        and mark them reported; the HTTP status (0 when there is nothing to push or nowhere to
        push it)."""
        if not (url or self.reports.url):
            return 0
        pending = [r for r in records if key(r) not in self._reported]
        self._reported.update(key(r) for r in pending)
        return await self.reports.push(items(pending), url)

    def template_params(
        self, template: str, raw: str | None, messages: ParamMessages
    ) -> dict[str, str]:
        """The template's parameters from ``raw`` (the JSON string sent), checked as the
        product does: an object of strings, every ``${name}`` given, no links, no blacklisted
        words; raises the product's RpcError."""
        wanted = VARIABLE.findall(template)
        params: Any = {}
        if raw:
            try:
                params = json.loads(raw)
            except ValueError:
                raise RpcError(*messages.invalid) from None
            if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
                raise RpcError(*messages.invalid)
        if any(name not in params for name in wanted):
            raise RpcError("isv.TEMPLATE_MISSING_PARAMETERS", messages.missing)
        for value in params.values():
            if LINK.search(value):
                raise RpcError("isv.PARAM_NOT_SUPPORT_URL", messages.link)
            if any(word in value for word in self.blocked_words):
                raise RpcError("isv.BLACK_KEY_CONTROL_LIMIT", "模板变量中存在黑名单关键字")
        return {name: params[name] for name in wanted}

    async def close(self) -> None:
        await self.reports.close()


def product_app(state: FakeProduct, key: web.AppKey[Any]) -> web.Application:
    """The fake product's application: its RPC actions, ``POST /_fake/receipts`` (push the
    receipts now, to ``{"url": ...}`` or the configured one) and ``app[key]``, its state."""
    app = web.Application()
    app[key] = state
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
