"""A small typed route table: each route names its body and response types for OpenAPI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from gateway.api.body import budgeted, expect_continue, read_body
from gateway.errors import Invalid, split_validation_error

Handler = Callable[..., Awaitable[Any]]


class Route(msgspec.Struct, frozen=True):
    method: str
    path: str
    handler: Handler
    summary: str
    body: type | None = None
    response: Any = None
    status: int = 200
    public: bool = False  # no API key needed
    query: tuple[tuple[str, str], ...] = ()  # (name, description)


ROUTES: list[Route] = []


def route(
    method: str,
    path: str,
    summary: str,
    *,
    body: type | None = None,
    response: Any = None,
    status: int = 200,
    public: bool = False,
    query: tuple[tuple[str, str], ...] = (),
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, path, handler, summary, body, response, status, public, query))
        return handler

    return register


_decoders: dict[type, msgspec.json.Decoder] = {}
_encoder = msgspec.json.Encoder()


async def decode_body(request: web.Request, kind: type) -> Any:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    raw = await read_body(request)
    if not raw:
        raise Invalid("the request body is empty: send a JSON object")
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise Invalid(*split_validation_error(exc)) from None
    except msgspec.DecodeError as exc:
        raise Invalid(f"the body is not valid JSON: {exc}") from None


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_encoder.encode(payload),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def install(app: web.Application) -> None:
    """Add every route in ROUTES to ``app``, wrapped to decode bodies and encode answers."""
    for r in ROUTES:
        expect = expect_continue if r.body is not None else None
        app.router.add_route(r.method, r.path, _wrap(r), expect_handler=expect)


def _wrap(r: Route) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if r.body is None:
            result = await r.handler(request)
        else:
            async with budgeted(request):  # held until the message is committed
                result = await r.handler(request, await decode_body(request, r.body))
        if isinstance(result, web.StreamResponse):
            return result
        if result is None:
            return web.Response(status=204)
        return json_response(result, r.status)

    handle.__name__ = r.handler.__name__
    return handle
