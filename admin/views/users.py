"""系统设置 → 控制台用户 (administrators only): console users and their roles.

The console-user service holds the rules: password length, one role of admin / operator /
read-only, never removing the last administrator, nobody deleting themselves.
"""

from __future__ import annotations

import asyncio
import zoneinfo
from functools import cache

from aiohttp import web

from admin import i18n
from admin.forms import Form, page_number, paginate, read_form
from admin.render import redirect, render, translate
from admin.routing import ADMIN, route
from admin.views.common import confirm, console, query_text, refusal_redirect, token, user
from gateway.console_users import ROLES, ConsoleUserIn
from gateway.errors import GatewayError, Invalid, NotFound

FIELDS = {"name", "role", "password", "password2", "language", "time_zone"}


@cache
def _zones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


async def time_zones() -> tuple[str, ...]:
    return await asyncio.to_thread(_zones)  # reads the zone files once, off the loop


def _user_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound(f"no console user with id {raw!r}")
    return int(raw)


def language_options(request: web.Request) -> list[tuple[str, str]]:
    t = translate(request)
    return [(lang, t(f"languages.{lang}")) for lang in i18n.LANGUAGES]


async def _form(request: web.Request, template: str, form: Form, status: int = 200, **extra):
    t = translate(request)
    return render(
        request,
        template,
        status=status,
        form=form,
        roles_options=[(r, t(f"roles.{r}")) for r in ROLES],
        language_options=language_options(request),
        zones=await time_zones(),
        **extra,
    )


@route("GET", "/users", "users.list", ADMIN)
async def list_users(request: web.Request) -> web.Response:
    q = query_text(request, "q", 64)
    users = await console(request).users.list(q or None)
    return render(request, "users/list.html", page=paginate(users, page_number(request)), q=q)


@route("GET", "/users/new", "users.new", ADMIN)
async def new(request: web.Request) -> web.Response:
    form = Form(
        values={
            "role": "operator",
            "language": "zh-CN",
            "time_zone": "Asia/Shanghai",
            "must_change": "on",
        }
    )
    return await _form(request, "users/form.html", form)


@route("POST", "/users/new", "users.create", ADMIN)
async def create(request: web.Request) -> web.StreamResponse:
    t = translate(request)
    posted = await read_form(request)
    form = Form(values={k: v for k, v in posted.items() if "password" not in k})
    try:
        if posted.get("password", "") != posted.get("password2", ""):
            raise Invalid(t("errors.passwords_differ"), "password2")
        body = ConsoleUserIn(
            name=posted.get("name", ""),
            password=posted.get("password", ""),
            role=posted.get("role", ""),
            language=posted.get("language", "zh-CN"),
            time_zone=posted.get("time_zone", "Asia/Shanghai"),
        )
        created = await console(request).users.create(
            body, must_change_password=posted.get("must_change") == "on"
        )
    except GatewayError as exc:
        form.fail(exc, t, FIELDS)
        return await _form(request, "users/form.html", form, 422)
    raise redirect(request, "users.list", "notice.user_created", notice_args={"name": created.name})


@route("GET", "/users/{id}/edit", "users.edit", ADMIN)
async def edit(request: web.Request) -> web.Response:
    target = await console(request).users.get(_user_id(request))
    form = Form(
        values={"role": target.role, "language": target.language, "time_zone": target.time_zone}
    )
    return await _form(request, "users/edit.html", form, target=target)


@route("POST", "/users/{id}/edit", "users.update", ADMIN)
async def update(request: web.Request) -> web.StreamResponse:
    users = console(request).users
    target = await users.get(_user_id(request))
    t = translate(request)
    posted = await read_form(request)
    form = Form(values={k: v for k, v in posted.items() if "password" not in k})
    try:
        password = posted.get("password", "")
        if password and password != posted.get("password2", ""):
            raise Invalid(t("errors.passwords_differ"), "password2")
        await users.update(
            target.id,
            posted.get("role", ""),
            posted.get("language", ""),
            posted.get("time_zone", ""),
        )
        if password:
            keep = token(request) if target.id == user(request).id else None
            await users.set_password(target.id, password, posted.get("must_change") == "on", keep)
    except GatewayError as exc:
        form.fail(exc, t, FIELDS)
        return await _form(request, "users/edit.html", form, 422, target=target)
    raise redirect(request, "users.list", "notice.user_saved", notice_args={"name": target.name})


@route("POST", "/users/{id}/delete", "users.delete", ADMIN)
async def delete(request: web.Request) -> web.StreamResponse:
    users = console(request).users
    target = await users.get(_user_id(request))
    t = translate(request)
    posted = await read_form(request)
    page = confirm(
        request, posted, t("users.delete_title"), t("users.delete_confirm", name=target.name)
    )
    if page is not None:
        return page
    with refusal_redirect(request, "users.list"):
        await users.delete(target.id, user(request).id)
    raise redirect(request, "users.list", "notice.user_deleted", notice_args={"name": target.name})
