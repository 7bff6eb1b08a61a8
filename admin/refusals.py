"""The console's answer when its caller's address is over a budget of gateway.api.limits."""

from __future__ import annotations

from aiohttp import web

from admin.render import translate
from gateway.api.limits import TooMany, retry_after


def too_many(request: web.Request, exc: TooMany) -> web.Response:
    """429 in the operator's language (the session is not loaded yet: the language cookie)."""
    seconds = retry_after(exc)
    text = translate(request)("errors.too_many", address=exc.address, seconds=seconds)
    return web.Response(
        text=text, status=429, content_type="text/plain", headers={"Retry-After": seconds}
    )
