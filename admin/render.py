"""Rendering pages: one Jinja2 environment (autoescape always on), the per-request context,
dates in the operator's time zone, and one-shot notices carried across a redirect."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import zoneinfo
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from admin import i18n
from admin.menu import build_menu
from admin.session import SESSION, cookie_options
from gateway.console_store import SessionRow

log = logging.getLogger(__name__)

FLASH_COOKIE = "msggate_flash"
LANG_COOKIE = "msggate_lang"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("admin", "templates"),
    autoescape=True,  # every value is escaped; nothing is ever marked safe
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def environment() -> jinja2.Environment:
    return _env


def local_time(value: dt.datetime | str | None, time_zone: str) -> str:
    """``value`` as yyyy-mm-dd HH:mm:ss in ``time_zone`` ('' for None)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        zone = zoneinfo.ZoneInfo(time_zone)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        zone = zoneinfo.ZoneInfo("UTC")
    return value.astimezone(zone).strftime(DATE_FORMAT)


def show(value: Any) -> str:
    """A value for display: text as it is, anything else as JSON (escaped when rendered)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def language_of(request: web.Request) -> str:
    session: SessionRow | None = request.get(SESSION)
    if session is not None:
        return i18n.pick(session.user.language)
    cookie = request.cookies.get(LANG_COOKIE)
    # zh-CN unless this browser chose English (the login page's link, or the last user's choice)
    return cookie if cookie in i18n.LANGUAGES else i18n.DEFAULT


def time_zone_of(request: web.Request) -> str:
    session: SessionRow | None = request.get(SESSION)
    return session.user.time_zone if session is not None else "Asia/Shanghai"


def translate(request: web.Request) -> i18n.Translate:
    return i18n.translator(language_of(request))


def url(
    request: web.Request, name: str, query: Mapping[str, Any] | None = None, /, **parts: Any
) -> str:
    """The path of console route ``name`` (with ``parts`` filled in) and an optional query."""
    path = str(request.app.router[name].url_for(**{k: str(v) for k, v in parts.items()}))
    if query:
        clean = {k: v for k, v in query.items() if v not in (None, "")}
        if clean:
            path += "?" + urlencode(clean)
    return path


# -- notices across a redirect --------------------------------------------------------------


def flash(response: web.StreamResponse, key: str, kind: str = "success", **args: Any) -> None:
    """Show the catalogue text ``key`` (filled with ``args``) on the next page rendered."""
    payload = json.dumps([kind, key, {k: str(v) for k, v in args.items()}], ensure_ascii=False)
    value = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    response.set_cookie(
        FLASH_COOKIE, value, max_age=60, path="/admin", httponly=True, samesite="Lax"
    )


def _take_flash(request: web.Request) -> tuple[str, str, dict[str, str]] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or len(raw) > 4000:
        return None
    try:
        kind, key, args = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, TypeError):
        return None
    if kind not in ("success", "error", "info") or not isinstance(args, dict):
        return None
    if not i18n.has("en", key):  # only our own texts; what a cookie says is never shown as is
        return None
    return kind, key, {str(k): str(v) for k, v in args.items()}


def redirect(
    request: web.Request,
    name: str,
    /,
    notice: str | None = None,
    kind: str = "success",
    query: Mapping[str, Any] | None = None,
    notice_args: Mapping[str, Any] | None = None,
    **parts: Any,
) -> web.HTTPSeeOther:
    """A 303 to console route ``name`` carrying an optional notice."""
    response = web.HTTPSeeOther(url(request, name, query, **parts))
    if notice:
        flash(response, notice, kind, **dict(notice_args or {}))
    return response


# -- pages ----------------------------------------------------------------------------------


def context(request: web.Request) -> dict[str, Any]:
    session: SessionRow | None = request.get(SESSION)
    language = language_of(request)
    tz = time_zone_of(request)
    t = i18n.translator(language)
    flashed = _take_flash(request)
    notice = None
    if flashed is not None:
        kind, key, args = flashed
        notice = {"kind": kind, "text": t(key, **args)}

    def url_for(route: str, query: Mapping[str, Any] | None = None, /, **parts: Any) -> str:
        return url(request, route, query, **parts)

    def static(path: str) -> str:
        return url(request, "static", filename=path)

    def maybe(key: str, default: str) -> str:
        text = t(key)
        return default if text == key else text

    return {
        "_": t,
        "maybe": maybe,
        "show": show,
        "lang": language,
        "tz": tz,
        "session": session,
        "user": session.user if session else None,
        "csrf": session.csrf_token if session else "",
        "url": url_for,
        "static": static,
        "localtime": lambda value: local_time(value, tz),
        "menu": build_menu(request, session),
        "notice": notice,
        "path": request.path,
        "query": dict(request.query),
    }


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    ctx = context(request)
    ctx.update(values)
    body = _env.get_template(template).render(ctx)
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    if FLASH_COOKIE in request.cookies:
        response.del_cookie(FLASH_COOKIE, path="/admin")
    return response


__all__ = ["cookie_options", "flash", "local_time", "redirect", "render", "translate", "url"]
