"""The console's application factory (a sub-application mounted at /admin) and its services.

``create_admin`` only wires: routes, static files, middlewares, headers. ``console_ctx`` runs
on the parent application after the gateway's services are open and builds the console's own
(console users, the message log) on the same database pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from admin import routing, views  # noqa: F401  (views: registers the routes)
from admin.security import errors, guard, security_headers
from admin.session import OPTIONS, options_from
from gateway.config import Settings
from gateway.console_store import ConsoleStore
from gateway.console_users import ConsoleUsers
from gateway.message_log import MessageLog
from gateway.services import SERVICES
from gateway.throttle import Limits, Throttle

PREFIX = "/admin"


@dataclass
class Console:
    users: ConsoleUsers
    log: MessageLog


CONSOLE = web.AppKey("console", Console)


async def console_ctx(app: web.Application) -> AsyncIterator[None]:
    """On the parent app, after its services: the console's services on the same pool."""
    services = app[SERVICES]
    store = ConsoleStore(services.store.pool)
    throttle = Throttle(services.store, "console", Limits.from_settings(services.settings))
    app[CONSOLE] = Console(ConsoleUsers(store, throttle), MessageLog(store))
    yield


def create_admin(settings: Settings) -> web.Application:
    admin = web.Application(middlewares=[errors, guard])
    admin[OPTIONS] = options_from(settings)
    admin.on_response_prepare.append(security_headers)
    static = resources.files("admin").joinpath("static")
    admin.router.add_static("/static", str(static), name="static", append_version=False)
    routing.install(admin)
    return admin


def install(app: web.Application, settings: Settings) -> None:
    """Mount the console at /admin on the gateway's app (after its services context)."""
    app.cleanup_ctx.append(console_ctx)
    app.add_subapp(PREFIX, create_admin(settings))

    async def to_console(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(PREFIX + "/")

    app.router.add_get("/", to_console)
