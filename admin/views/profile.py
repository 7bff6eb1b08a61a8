"""个人设置: one's own language (中文 / English), time zone and password."""

from __future__ import annotations

from aiohttp import web

from admin import i18n
from admin.forms import Form, read_form
from admin.render import LANG_COOKIE, redirect, render, translate, url
from admin.routing import ANY, route
from admin.session import client_ip, cookie_options
from admin.views.auth import throttled_text
from admin.views.common import console, token, user
from admin.views.users import language_options, time_zones
from gateway.errors import GatewayError, Invalid
from gateway.passwords import PasswordsBusy
from gateway.throttle import TooManyAttempts


async def _page(request: web.Request, form: Form, password: Form, status: int = 200):
    return render(
        request,
        "profile.html",
        status=status,
        form=form,
        password=password,
        language_options=language_options(request),
        zones=await time_zones(),
    )


@route("GET", "/profile", "profile.index", ANY)
async def index(request: web.Request) -> web.Response:
    me = user(request)
    form = Form(values={"language": me.language, "time_zone": me.time_zone})
    return await _page(request, form, Form())


@route("POST", "/profile", "profile.save", ANY)
async def save(request: web.Request) -> web.StreamResponse:
    me = user(request)
    posted = await read_form(request)
    form = Form(values=posted)
    try:
        saved = await console(request).users.update(
            me.id, me.role, posted.get("language", ""), posted.get("time_zone", "")
        )
    except GatewayError as exc:
        form.fail(exc, translate(request), {"language", "time_zone"})
        return await _page(request, form, Form(), 422)
    response = redirect(request, "profile.index", "notice.profile_saved")
    response.set_cookie(
        LANG_COOKIE, saved.language, max_age=365 * 24 * 3600, **cookie_options(request)
    )
    raise response


@route("POST", "/profile/language", "profile.language", ANY)
async def language(request: web.Request) -> web.StreamResponse:
    me = user(request)
    posted = await read_form(request)
    chosen = posted.get("language", "")
    if chosen not in i18n.LANGUAGES:
        raise Invalid(f"language must be one of {', '.join(i18n.LANGUAGES)}", "language")
    await console(request).users.update(me.id, me.role, chosen, me.time_zone)
    back = posted.get("back", "")
    if not back.startswith("/admin/") or back.startswith("//") or "\\" in back:
        back = url(request, "home.index")
    response = web.HTTPSeeOther(back)
    response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 24 * 3600, **cookie_options(request))
    raise response


@route("POST", "/profile/password", "profile.password", ANY)
async def password(request: web.Request) -> web.StreamResponse:
    me = user(request)
    t = translate(request)
    posted = await read_form(request)
    change = Form()
    try:
        if posted.get("new_password", "") != posted.get("new_password2", ""):
            raise Invalid(t("errors.passwords_differ"), "new_password2")
        await console(request).users.change_own_password(
            me,
            posted.get("current_password", ""),
            posted.get("new_password", ""),
            token(request),
            client_ip(request),
        )
    except GatewayError as exc:
        if isinstance(exc, TooManyAttempts):
            change.error = throttled_text(t, exc)
        elif isinstance(exc, PasswordsBusy):
            change.error = t("login.busy")
        else:
            change.fail(exc, t, {"current_password", "new_password", "new_password2"})
        form = Form(values={"language": me.language, "time_zone": me.time_zone})
        status = exc.status if isinstance(exc, TooManyAttempts | PasswordsBusy) else 422
        return await _page(request, form, change, status)
    raise redirect(request, "profile.index", "notice.password_changed")
