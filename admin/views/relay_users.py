"""系统设置 → SMTP 中继用户: the user names and passwords applications give with SMTP AUTH.

The relay's user service keeps argon2 hashes only and sets the password rules.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from admin.forms import Form, page_number, paginate, read_form
from admin.render import redirect, render, translate
from admin.routing import ADMIN, ANY, route
from admin.views.common import delete_posted, relay
from gateway.errors import GatewayError, Invalid, split_validation_error
from gateway.relay.users import RelayUserIn

FIELDS = {"username", "password", "password2"}


@route("GET", "/relay-users", "relay_users.list", ANY)
async def list_users(request: web.Request) -> web.Response:
    users = await relay(request).users.list()
    return render(request, "relay_users/list.html", page=paginate(users, page_number(request)))


@route("GET", "/relay-users/new", "relay_users.new", ADMIN)
async def new(request: web.Request) -> web.Response:
    return render(request, "relay_users/form.html", form=Form())


@route("POST", "/relay-users/new", "relay_users.create", ADMIN)
async def create(request: web.Request) -> web.StreamResponse:
    t = translate(request)
    posted = await read_form(request)
    form = Form(values={"username": posted.get("username", "")})
    try:
        if posted.get("password", "") != posted.get("password2", ""):
            raise Invalid(t("errors.passwords_differ"), "password2")
        try:
            body = msgspec.convert(
                {
                    "username": posted.get("username", "").strip(),
                    "password": posted.get("password", ""),
                },
                RelayUserIn,
            )
        except msgspec.ValidationError as exc:
            raise Invalid(*split_validation_error(exc)) from None
        created = await relay(request).users.create(body)
    except GatewayError as exc:
        form.fail(exc, t, FIELDS)
        return render(request, "relay_users/form.html", status=422, form=form)
    raise redirect(
        request,
        "relay_users.list",
        "notice.relay_user_created",
        notice_args={"name": created.username},
    )


@route("POST", "/relay-users/delete", "relay_users.delete", ADMIN)
async def delete(request: web.Request) -> web.StreamResponse:
    t = translate(request)
    return await delete_posted(
        request,
        "username",
        t("relay_users.delete_title"),
        lambda name: t("relay_users.delete_confirm", name=name),
        lambda name: relay(request).users.delete(name),
        "relay_users.list",
        "notice.relay_user_deleted",
    )
