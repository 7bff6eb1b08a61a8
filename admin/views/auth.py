"""登录: the login page, logging in (throttled) and out."""

from __future__ import annotations

import secrets

from aiohttp import web

from admin import i18n
from admin.forms import Form, read_form
from admin.i18n import Translate
from admin.render import LANG_COOKIE, language_of, redirect, render, translate, url
from admin.routing import ANY, PUBLIC, route
from admin.session import (
    LOGIN_CSRF_COOKIE,
    SESSION,
    SESSION_COOKIE,
    client_ip,
    cookie_options,
)
from admin.views.common import console, token
from gateway.console_users import SESSION_MAX_SECONDS
from gateway.errors import Unauthorized
from gateway.passwords import PasswordsBusy
from gateway.throttle import TooManyAttempts


def _next(request: web.Request, target: str | None) -> str:
    """Where to go after login: a console path only (never another site)."""
    home = url(request, "home.index")
    if not target or not target.startswith("/admin/") or target.startswith("//"):
        return home
    if "\\" in target or any(c < " " for c in target):
        return home
    return target


def _login_page(request: web.Request, form: Form, status: int = 200) -> web.Response:
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request, "login.html", status=status, form=form, login_csrf=csrf, languages=i18n.LANGUAGES
    )
    if request.cookies.get(LOGIN_CSRF_COOKIE) != csrf:
        response.set_cookie(LOGIN_CSRF_COOKIE, csrf, max_age=24 * 3600, **cookie_options(request))
    return response


def throttled_text(t: Translate, exc: TooManyAttempts) -> str:
    """Why a login was held back, and for how long, in the user's language."""
    return t(f"login.throttled_{exc.limit}", minutes=int(exc.retry_after // 60) + 1)


@route("GET", "/login", "auth.login", PUBLIC)
async def login_page(request: web.Request) -> web.StreamResponse:
    lang = request.query.get("lang")
    if lang in i18n.LANGUAGES and request.get(SESSION) is None:
        response = web.HTTPSeeOther(url(request, "auth.login", {"next": request.query.get("next")}))
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, **cookie_options(request))
        raise response
    if request.get(SESSION) is not None:
        raise web.HTTPSeeOther(_next(request, request.query.get("next")))
    return _login_page(request, Form(values={"next": request.query.get("next", "")}))


@route("POST", "/login", "auth.login_submit", PUBLIC)
async def login(request: web.Request) -> web.StreamResponse:
    values = await read_form(request)
    form = Form(values={"name": values.get("name", "")[:64], "next": values.get("next", "")})
    t = translate(request)
    try:
        done = await console(request).users.login(
            values.get("name", ""),
            values.get("password", ""),
            client_ip(request),
            request.headers.get("User-Agent"),
        )
    except TooManyAttempts as exc:
        form.error = throttled_text(t, exc)
        response = _login_page(request, form, 429)
        response.headers["Retry-After"] = str(int(exc.retry_after) + 1)
        return response
    except PasswordsBusy as exc:
        form.error = t("login.busy")
        response = _login_page(request, form, 503)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except Unauthorized:
        form.error = t("login.wrong")
        return _login_page(request, form, 401)
    response = web.HTTPSeeOther(_next(request, values.get("next")))
    response.set_cookie(
        SESSION_COOKIE, done.token, max_age=int(SESSION_MAX_SECONDS), **cookie_options(request)
    )
    if done.session.user.language != language_of(request):
        response.set_cookie(
            LANG_COOKIE,
            done.session.user.language,
            max_age=365 * 24 * 3600,
            **cookie_options(request),
        )
    raise response


@route("POST", "/logout", "auth.logout", ANY)
async def logout(request: web.Request) -> web.StreamResponse:
    await console(request).users.logout(token(request))
    response = redirect(request, "auth.login", "notice.logged_out")
    response.del_cookie(SESSION_COOKIE, path="/admin")
    raise response
