"""系统设置 → API 密钥: create (the key is shown once, only its hash is kept), list, revoke."""

from __future__ import annotations

from aiohttp import web

from admin.forms import Form, page_number, paginate, read_form
from admin.render import render, translate
from admin.routing import ADMIN, ANY, route
from admin.views.common import delete_posted, services
from gateway.errors import GatewayError


async def _page(request: web.Request, form: Form, status: int = 200) -> web.Response:
    keys = await services(request).api_keys.list()
    keys.sort(key=lambda k: (k.revoked_at is not None, -k.id))
    return render(
        request,
        "apikeys/list.html",
        status=status,
        page=paginate(keys, page_number(request)),
        form=form,
    )


@route("GET", "/apikeys", "apikeys.list", ANY)
async def list_keys(request: web.Request) -> web.Response:
    return await _page(request, Form())


@route("POST", "/apikeys", "apikeys.create", ADMIN)
async def create(request: web.Request) -> web.StreamResponse:
    posted = await read_form(request)
    form = Form(values={"name": posted.get("name", "")})
    try:
        record, key = await services(request).api_keys.create(posted.get("name", ""))
    except GatewayError as exc:
        if exc.field is None:
            exc.field = "name"
        form.fail(exc, translate(request), {"name"})
        return await _page(request, form, 422)
    # shown on this page only: never in a URL, a cookie or a log
    api = f"{request.scheme}://{request.host}/api/v1"
    return render(request, "apikeys/created.html", record=record, key=key, api_url=api)


@route("POST", "/apikeys/revoke", "apikeys.revoke", ADMIN)
async def revoke(request: web.Request) -> web.StreamResponse:
    t = translate(request)
    return await delete_posted(
        request,
        "name",
        t("apikeys.revoke_title"),
        lambda name: t("apikeys.revoke_confirm", name=name),
        lambda name: services(request).api_keys.revoke(name),
        "apikeys.list",
        "notice.key_revoked",
    )
