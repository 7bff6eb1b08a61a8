"""Reading an API request's body: its size checked before a byte is read, its memory budgeted.

``Content-Length`` above ``MSGGATE_HTTP_MAX_BODY_SIZE`` is answered 413 at once, and the
connection closed, so a client never uploads what would be refused. A chunked body is counted
while it comes (aiohttp's ``client_max_size``, the same limit). A large body waits for its
share of the body budget (``gateway.bodies``) before it is read, and holds it until the
request is answered, when its decoded message has been committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.bodies import TooLarge
from gateway.errors import Invalid
from gateway.services import SERVICES


@contextlib.asynccontextmanager
async def budgeted(request: web.Request) -> AsyncIterator[None]:
    """Refuse a declared size over the limit (413), then hold the body's budget."""
    services = request.config_dict[SERVICES]
    limit = services.settings.http_max_body_size
    length = request.content_length
    if length is not None and length > limit:
        raise TooLarge(
            f"the body is {length} bytes; at most {limit} are accepted (MSGGATE_HTTP_MAX_BODY_SIZE)"
        )
    # a chunked body (no length) may be as large as the limit: it is held as that large
    async with services.bodies.hold(limit if length is None else length):
        yield


async def read_body(request: web.Request) -> bytes | bytearray:
    """The whole body, read into one buffer of its declared length (no copy to join it)."""
    length = request.content_length
    if length is None or not request.can_read_body:
        return await request.read()
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
