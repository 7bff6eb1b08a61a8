"""概览: the last day's numbers, the queue, and where to start."""

from __future__ import annotations

from aiohttp import web

from admin.render import render, url
from admin.routing import ANY, PUBLIC, route
from admin.views.common import console, services


@route("GET", "/", "home.index", ANY)
async def index(request: web.Request) -> web.Response:
    overview = await console(request).log.overview()
    s = services(request)
    accounts = await s.accounts.list()
    settings = s.settings
    host = request.host
    return render(
        request,
        "home.html",
        overview=overview,
        only_sandbox=all(a.sandbox for a in accounts),
        sandbox_accounts=[a.name for a in accounts if a.sandbox],
        channels=sorted(s.plugins.channels),
        api_url=f"{request.scheme}://{host}/api/v1",
        smtp_port=(s.relay.listener.port if s.relay and s.relay.listener else None),
        relay_domain=settings.relay_domain,
    )


@route("GET", "", "home.bare", PUBLIC)
async def bare(request: web.Request) -> web.StreamResponse:
    """/admin without its slash."""
    raise web.HTTPFound(url(request, "home.index"))
