"""沙箱发件箱: what sandbox accounts recorded instead of sending, newest first."""

from __future__ import annotations

from aiohttp import web

from admin.render import render
from admin.routing import ANY, route
from admin.views.common import query_text, services

PER_PAGE = 25


@route("GET", "/sandbox", "sandbox.list", ANY)
async def list_sandbox(request: web.Request) -> web.Response:
    s = services(request)
    account = query_text(request, "account")
    recipient = query_text(request, "recipient", 320)
    raw = request.query.get("before", "")
    before = int(raw) if raw.isdigit() and len(raw) < 18 else None
    rows = await s.store.list_sandbox(account or None, recipient or None, before, PER_PAGE)
    accounts = [a.name for a in await s.accounts.list() if a.sandbox]
    return render(
        request,
        "sandbox/list.html",
        rows=rows,
        account=account,
        recipient=recipient,
        accounts=accounts,
        before=before,
        older=rows[-1].id if len(rows) == PER_PAGE else None,
    )
