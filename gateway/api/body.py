"""Reading an API request's body: its size checked before a byte is read, its memory budgeted.

``Content-Length`` above ``MSGGATE_HTTP_MAX_BODY_SIZE`` is answered 413 before the body is
read (and before ``100 Continue``, to a client that waits for it), so a client need not upload
what would be refused. A chunked body is counted while it comes (aiohttp's
``client_max_size``, the same limit). A large body waits for its share of the body budget
(``gateway.bodies``) before it is read, and holds it until the request is answered, when its
decoded message has been committed.
"""

from __future__ import annotations

import contextlib

from aiohttp import web
from aiohttp.web_urldispatcher import _default_expect_handler

from gateway.bodies import LARGE, TooLarge
from gateway.errors import Invalid
from gateway.services import SERVICES


def _too_large(request: web.Request) -> str | None:
    """Why the declared body is too large, or None."""
    limit = request.config_dict[SERVICES].settings.http_max_body_size
    length = request.content_length
    if length is None or length <= limit:
        return None
    return f"the body is {length} bytes; at most {limit} are accepted (MSGGATE_HTTP_MAX_BODY_SIZE)"


async def expect_continue(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue``: a body too large is refused before the client sends it."""
    problem = _too_large(request)
    if problem is None:
        return await _default_expect_handler(request)
    return web.json_response({"error": {"code": TooLarge.code, "message": problem}}, status=413)


_UNBUDGETED = contextlib.nullcontext()


def budgeted(request: web.Request) -> contextlib.AbstractAsyncContextManager[None]:
    """Refuse a declared size over the limit (413), then hold the body's budget (a small
    declared body, the usual case, holds nothing and costs no context of its own)."""
    length = request.content_length
    if length is not None and length < LARGE:
        return _UNBUDGETED
    problem = _too_large(request)
    if problem is not None:
        raise TooLarge(problem)
    services = request.config_dict[SERVICES]
    # a chunked body (no length) may be as large as the limit: it is held as that large
    return services.bodies.hold(services.settings.http_max_body_size if length is None else length)


async def read_body(request: web.Request) -> bytes | bytearray:
    """The whole body, read into one buffer of its declared length (no copy to join it)."""
    length = request.content_length
    if length is None or length < LARGE or not request.can_read_body:
        return await request.read()  # aiohttp's own, within client_max_size
    buffer = bytearray(length)
    view = memoryview(buffer)
    filled = 0
    try:
        while filled < length:
            chunk = await request.content.readany()
            if not chunk:
                break
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
    finally:
        view.release()
    if filled < length:
        raise Invalid(f"the body ended after {filled} of the {length} bytes declared")
    return buffer
