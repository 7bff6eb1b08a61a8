"""A small typed route table: each route names its body, parameters and response types, which
both check requests and write the OpenAPI document, so the two cannot drift apart."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from gateway.api.body import budgeted, expect_continue, read_body
from gateway.errors import Invalid, NotFound, UnsupportedMediaType, split_validation_error
from gateway.storable import MAX_JSON_DEPTH, find_unstorable, text_problem

Handler = Callable[..., Awaitable[Any]]

PATH_PARAM = re.compile(r"{(\w+)}")
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")


class Param(msgspec.Struct, frozen=True):
    """A query or path parameter: ``type`` is the msgspec type of its value (``int``, ``str``
    or ``uuid.UUID``, with ``Meta`` limits); a value that does not convert is refused (422 in
    the query, 404 in the path). A path parameter not declared is any text."""

    name: str
    description: str = ""
    type: Any = str


class Route(msgspec.Struct, frozen=True):
    method: str
    path: str
    handler: Handler
    summary: str
    body: type | None = None
    response: Any = None
    status: int = 200
    public: bool = False  # no API key needed
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()  # statuses beyond those every route of its kind can answer
    also: tuple[int, ...] = ()  # other statuses answered with the response type (health's 503)

    @property
    def path_params(self) -> tuple[Param, ...]:
        declared = {p.name: p for p in self.params}
        return tuple(declared.get(n, Param(n)) for n in PATH_PARAM.findall(self.path))

    @property
    def query_params(self) -> tuple[Param, ...]:
        in_path = set(PATH_PARAM.findall(self.path))
        return tuple(p for p in self.params if p.name not in in_path)


ROUTES: list[Route] = []
PARAMS = web.RequestKey("params", dict)


def route(
    method: str,
    path: str,
    summary: str,
    *,
    body: type | None = None,
    response: Any = None,
    status: int = 200,
    public: bool = False,
    params: tuple[Param, ...] = (),
    errors: tuple[int, ...] = (),
    also: tuple[int, ...] = (),
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append(
            Route(
                method, path, handler, summary, body, response, status, public, params, errors, also
            )
        )
        return handler

    return register


_decoders: dict[type, msgspec.json.Decoder] = {}
_encoder = msgspec.json.Encoder()


def is_json(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type (aiohttp has already dropped parameters)."""
    kind, _, subtype = content_type.lower().partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def check_content_type(request: web.Request) -> None:
    """415 unless the body is declared JSON in UTF-8 (RFC 8259 allows no other charset)."""
    if not is_json(request.content_type):
        raise UnsupportedMediaType(
            f"send the body as JSON with Content-Type: application/json"
            f" (got {request.headers.get('Content-Type') or 'no Content-Type'})",
            "Content-Type",
        )
    charset = request.charset
    if charset and charset.lower().replace("_", "-") not in {"utf-8", "utf8"}:
        raise UnsupportedMediaType(
            f"JSON is UTF-8: charset={charset} is not accepted", "Content-Type"
        )


def check_storable(value: Any, path: str = "") -> None:
    """Invalid naming the field if ``value`` holds text or nesting the database cannot store."""
    found = find_unstorable(value, path)
    if found is not None:
        field, problem = found
        raise Invalid(f"{field or 'the body'} {problem}", field or None)


async def decode_body(request: web.Request, kind: type) -> Any:
    """The body as ``kind``: 415 unless it is JSON, 422 naming the field for anything the
    type refuses or the database could not store (NUL, nesting deeper than allowed)."""
    check_content_type(request)
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    raw = await read_body(request)
    if not raw:
        raise Invalid("the request body is empty: send a JSON object")
    try:
        value = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise Invalid(*split_validation_error(exc)) from None
    except msgspec.DecodeError as exc:
        raise Invalid(f"the body is not valid JSON: {exc}") from None
    except RecursionError:  # msgspec recurses per level: far past the limit, it gives up first
        raise Invalid(
            f"the body is nested deeper than {MAX_JSON_DEPTH} levels of objects and arrays"
        ) from None
    if _may_be_unstorable(raw):
        check_storable(value)
    return value


def _may_be_unstorable(raw: bytes) -> bool:
    """Whether the decoded body needs the walk (about 15 us for a small message): decoded JSON
    holds a NUL only from a ``\\u0000`` escape, never a lone surrogate (msgspec refuses
    lone-surrogate escapes and invalid UTF-8), and cannot nest deeper than it has brackets."""
    return b"\\u0000" in raw or raw.count(b"{") + raw.count(b"[") > MAX_JSON_DEPTH


def _convert(param: Param, raw: str) -> Any:
    if param.type is str:
        return raw
    if _is_int(param.type) and not _WHOLE_NUMBER.fullmatch(raw):
        raise msgspec.ValidationError("Expected a whole number")
    return msgspec.convert(raw, param.type, strict=False)


def _is_int(kind: Any) -> bool:
    return kind is int or getattr(kind, "__origin__", None) is int


_NO_PARAMS: dict[str, Any] = {}


def parse_params(request: web.Request, r: Route) -> dict[str, Any]:
    """Every query and path parameter checked: 422 for text the database cannot store or a
    query value of the wrong type, 404 for a path segment that cannot name anything."""
    if not r.params and not request.query_string and not request.match_info:
        return _NO_PARAMS  # the hot path (POST /api/v1/messages): nothing to parse
    for source, where in ((request.query, "query"), (request.match_info, "path")):
        for key, value in source.items():
            problem = text_problem(key) or text_problem(value)
            if problem:
                raise Invalid(f"{where} parameter {key!r} {problem}", key)
    values: dict[str, Any] = {}
    for p in r.path_params:
        raw = request.match_info[p.name]
        try:
            values[p.name] = _convert(p, raw)
        except msgspec.ValidationError as exc:
            message, _ = split_validation_error(exc)
            raise NotFound(f"nothing is named {raw!r} here: {message}", p.name) from None
    for p in r.query_params:
        raw = request.query.get(p.name)
        if raw is None or (raw == "" and p.type is str):
            values[p.name] = None  # an empty text filter is no filter
            continue
        try:
            values[p.name] = _convert(p, raw)
        except msgspec.ValidationError as exc:
            message, _ = split_validation_error(exc)
            raise Invalid(f"{p.name}: {message}", p.name) from None
    return values


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
        request[PARAMS] = parse_params(request, r)
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
