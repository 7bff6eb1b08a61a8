"""The aiohttp application factory: it only wires; resources live in cleanup contexts."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from admin import refusals
from admin.app import PREFIX as CONSOLE_PREFIX
from admin.app import install as install_console
from gateway.api import middleware, relay, routing, v1  # noqa: F401  (v1, relay: routes)
from gateway.api.connections import ConnectionGate, GatedSite, file_limit_cap
from gateway.api.limits import REQUEST_LIMITS, RequestLimits
from gateway.api.malformed import quiet_malformed_requests
from gateway.api.openapi import openapi_document
from gateway.api.routing import Handler
from gateway.callbacks import CALLBACK_PREFIX, CallbackRoute
from gateway.config import Settings
from gateway.plugins import Plugins
from gateway.relay.access import parse_networks
from gateway.relay.listener import relay_listener_ctx
from gateway.runtime import open_services
from gateway.services import SERVICES

CONNECTION_GATE = web.AppKey("connection_gate", ConnectionGate)


async def openapi(request: web.Request) -> web.Response:
    return routing.json_response(openapi_document())


def create_app(
    settings: Settings, plugins: Plugins | None = None, dispatch: bool = True
) -> web.Application:
    quiet_malformed_requests()
    app = web.Application(
        middlewares=[middleware.guard],
        client_max_size=settings.http_max_body_size,  # chunked bodies; gateway.api.body
        handler_args={"keepalive_timeout": settings.http_keepalive_timeout},
    )
    trusted = parse_networks(settings.trusted_proxies)
    app[REQUEST_LIMITS] = RequestLimits(
        settings.http_max_unauthenticated_per_address,
        settings.http_max_failures_per_address,
        settings.http_failure_window,
        trusted,
        uncounted=CONSOLE_PREFIX,
        pages={CONSOLE_PREFIX: refusals.too_many},
    )
    app[CONNECTION_GATE] = ConnectionGate(
        file_limit_cap(settings.http_max_connections, settings.smtp_max_connections),
        settings.http_max_connections_per_address,
        settings.http_header_timeout,
        trusted,
    )
    plugins = plugins or Plugins.load()

    async def services_ctx(app: web.Application) -> AsyncIterator[None]:
        async with open_services(settings, plugins, dispatch) as services:
            app[SERVICES] = services
            yield

    app.cleanup_ctx.append(services_ctx)
    app.cleanup_ctx.append(relay_listener_ctx)  # after the services, closed before them
    install_console(app, settings)  # the web console at /admin (its context after the services)
    routing.install(app)
    app.router.add_get("/api/openapi.json", openapi)
    for route in plugins.callback_routes():
        app.router.add_route(route.method, CALLBACK_PREFIX + route.path, _callback(route))
    return app


def http_site(runner: web.AppRunner, host: str, port: int) -> web.TCPSite:
    """The HTTP listener of an app from :func:`create_app`, behind its connection budget."""
    return GatedSite(runner, host, port, runner.app[CONNECTION_GATE], reuse_address=True)


def _callback(route: CallbackRoute) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await route.handler(request, request.app[SERVICES].receipts)

    return handle
