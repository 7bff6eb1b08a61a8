"""The console's route table: every route names the least role that may use it.

Roles rank readonly < operator < admin. ``PUBLIC`` routes (the login page) need no session;
``ANY`` routes need one of any role (read-only screens, one's own profile, logout). The
``guard`` middleware in :mod:`admin.security` refuses a route whose role the user lacks, so
a handler cannot forget the check: a route without a role cannot be declared at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC = "public"
ANY = "any"
OPERATOR = "operator"
ADMIN = "admin"

RANK = {"readonly": 0, "operator": 1, "admin": 2}
NEEDS = {ANY: 0, OPERATOR: 1, ADMIN: 2}
ROLE_ATTRIBUTE = "__console_role__"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str
    role: str
    handler: Handler


ROUTES: list[Route] = []


def route(method: str, path: str, name: str, role: str) -> Callable[[Handler], Handler]:
    """Declare a console route; ``role`` is PUBLIC, ANY, OPERATOR or ADMIN."""
    if role not in (PUBLIC, *NEEDS):
        raise ValueError(f"unknown role {role!r} for {method} {path}")

    def register(handler: Handler) -> Handler:
        setattr(handler, ROLE_ATTRIBUTE, role)
        ROUTES.append(Route(method, path, name, role, handler))
        return handler

    return register


def allowed(user_role: str, role: str) -> bool:
    """May a user with ``user_role`` use a route that needs ``role``?"""
    if role == PUBLIC:
        return True
    return RANK.get(user_role, -1) >= NEEDS.get(role, 99)


def install(app: web.Application) -> None:
    for r in ROUTES:
        app.router.add_route(r.method, r.path, r.handler, name=r.name)
