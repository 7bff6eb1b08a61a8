"""The console's middlewares and headers: error pages, sessions, roles, CSRF, security headers.

Order (outermost first): ``errors`` turns every failure into an HTML page; ``guard`` loads the
session, sends visitors without one to the login page, refuses routes above the user's role,
and checks the CSRF token of every state-changing request: the session's own token for a
logged-in user, a double-submit cookie for the login form, and the ``Origin`` header whenever
the browser sends one.
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import urlsplit

from aiohttp import web

from admin.render import redirect, render, translate, url
from admin.routing import PUBLIC, ROLE_ATTRIBUTE, allowed
from admin.session import (
    LOGIN_CSRF_COOKIE,
    OPTIONS,
    SESSION,
    SESSION_COOKIE,
    TOKEN,
    is_tls,
)
from gateway.console_store import SessionRow
from gateway.errors import GatewayError
from gateway.relay.access import covered, parse_address
from gateway.store import UNAVAILABLE

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What a user who must change the password may still reach.
PASSWORD_CHANGE_ROUTES = frozenset(
    {"profile.index", "profile.password", "profile.language", "auth.logout", "static"}
)


class CsrfRefused(Exception):
    """A state-changing request without the right CSRF token, or from another origin."""


def _error_page(request: web.Request, status: int, message: str | None = None) -> web.Response:
    t = translate(request)
    titles = {
        403: "errors.forbidden",
        404: "errors.not_found",
        405: "errors.method",
        413: "errors.too_large",
        503: "errors.unavailable",
    }
    title = t(titles.get(status, "errors.internal" if status >= 500 else "errors.bad_request"))
    try:
        return render(
            request, "error.html", status=status, title=title, message=message, status_code=status
        )
    except Exception:  # the error page itself failed (e.g. no session loaded): plain text
        log.exception("rendering the error page failed")
        return web.Response(text=f"{status} {title}", status=status)


@web.middleware
async def errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error_page(request, exc.status)
    except CsrfRefused:
        return _error_page(request, 403, translate(request)("errors.csrf"))
    except GatewayError as exc:
        return _error_page(request, exc.status, exc.message)
    except UNAVAILABLE as exc:
        log.warning("console %s %s: database unavailable: %r", request.method, request.path, exc)
        return _error_page(request, 503, translate(request)("errors.database"))
    except Exception:
        log.exception("console %s %s failed", request.method, request.path)
        return _error_page(request, 500, translate(request)("errors.logged"))


def _route_role(request: web.Request) -> str | None:
    match = request.match_info
    if match.http_exception is not None:
        return PUBLIC  # 404 / 405: let the router's own answer through
    route = match.route
    if isinstance(route.resource, web.StaticResource):
        return PUBLIC
    return getattr(route.handler, ROLE_ATTRIBUTE, None)


def _allowed_hosts(request: web.Request) -> set[str]:
    hosts = {request.host.lower()}
    forwarded = request.headers.get("X-Forwarded-Host")
    options = request.config_dict[OPTIONS]
    if forwarded and covered(parse_address(request.remote), options.trusted_proxies):
        hosts.add(forwarded.split(",")[0].strip().lower())
    return hosts


async def _check_csrf(request: web.Request, role: str, session: SessionRow | None) -> None:
    origin = request.headers.get("Origin")
    foreign = origin == "null" or urlsplit(origin or "").netloc.lower() not in _allowed_hosts(
        request
    )
    if origin is not None and foreign:
        log.warning("console: refused %s %s from origin %r", request.method, request.path, origin)
        raise CsrfRefused
    form = await request.post()
    sent = form.get("_csrf")
    if role == PUBLIC:
        expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    else:
        expected = session.csrf_token if session is not None else None
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(sent, expected):
        log.warning(
            "console: refused %s %s: missing or wrong CSRF token", request.method, request.path
        )
        raise CsrfRefused


@web.middleware
async def guard(request: web.Request, handler) -> web.StreamResponse:
    from admin.app import CONSOLE

    match = request.match_info
    if match.http_exception is None and isinstance(match.route.resource, web.StaticResource):
        return await handler(request)  # CSS, script, icon: no session needed, none looked up
    role = _route_role(request)
    if role is None:  # a route without a declared role is refused, never served
        log.error("console route %s has no role; refusing it", request.path)
        raise web.HTTPNotFound
    session = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        session = await request.config_dict[CONSOLE].users.session(token)
        if session is not None:
            request[SESSION] = session
            request[TOKEN] = token
    if role != PUBLIC:
        if session is None:
            if request.method in SAFE_METHODS:
                target = request.path_qs if request.path != url(request, "home.index") else None
                raise redirect(request, "auth.login", query={"next": target})
            raise redirect(request, "auth.login", "notice.session_expired", "error")
        name = request.match_info.route.name
        if session.user.must_change_password and name not in PASSWORD_CHANGE_ROUTES:
            raise redirect(request, "profile.index", "notice.must_change_password", "info")
        if not allowed(session.user.role, role):
            t = translate(request)
            return _error_page(request, 403, t("errors.role", role=t(f"roles.{session.user.role}")))
    if request.method not in SAFE_METHODS:
        await _check_csrf(request, role, session)
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Frame-Options"] = "DENY"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    match = request.match_info
    static = match.http_exception is None and isinstance(match.route.resource, web.StaticResource)
    if not static:
        headers.setdefault("Cache-Control", "no-store")
    if is_tls(request):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
