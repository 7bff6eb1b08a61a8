"""Session cookies and the facts about a request the console needs: TLS, client address.

The session cookie is HttpOnly and SameSite=Lax, scoped to /admin, and Secure when the request
came over TLS (directly, or from a trusted proxy saying ``X-Forwarded-Proto: https``) or when
``MSGGATE_CONSOLE_SECURE_COOKIES`` is true (a TLS proxy that does not say so).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.config import ConfigError, Settings
from gateway.console_store import SessionRow
from gateway.relay.access import Network, client_address, covered, parse_address, parse_networks

SESSION_COOKIE = "msggate_session"
LOGIN_CSRF_COOKIE = "msggate_login_csrf"
COOKIE_PATH = "/admin"
SECURE_COOKIES_ENV = "MSGGATE_CONSOLE_SECURE_COOKIES"

SESSION = web.RequestKey("console_session", SessionRow)
TOKEN = web.RequestKey("console_token", str)


@dataclass(frozen=True)
class ConsoleOptions:
    secure_cookies: bool
    trusted_proxies: tuple[Network, ...]


OPTIONS = web.AppKey("console_options", ConsoleOptions)


def options_from(settings: Settings, environ: Mapping[str, str] | None = None) -> ConsoleOptions:
    environ = os.environ if environ is None else environ
    raw = (environ.get(SECURE_COOKIES_ENV) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        secure = False
    elif raw in ("1", "true", "yes", "on"):
        secure = True
    else:
        raise ConfigError(f"{SECURE_COOKIES_ENV}={raw!r} is not valid: expected true or false")
    return ConsoleOptions(secure, parse_networks(settings.trusted_proxies))


def _options(request: web.Request) -> ConsoleOptions:
    return request.config_dict[OPTIONS]


def client_ip(request: web.Request) -> str:
    """The caller's address (X-Forwarded-For only from a trusted proxy), as text."""
    options = _options(request)
    address = client_address(
        request.remote, request.headers.getall("X-Forwarded-For", []), options.trusted_proxies
    )
    return str(address) if address is not None else "unknown"


def is_tls(request: web.Request) -> bool:
    if request.secure:
        return True
    options = _options(request)
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https" and covered(parse_address(request.remote), options.trusted_proxies)


def cookie_options(request: web.Request) -> dict[str, Any]:
    return {
        "path": COOKIE_PATH,
        "httponly": True,
        "samesite": "Lax",
        "secure": _options(request).secure_cookies or is_tls(request),
    }
