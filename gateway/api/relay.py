"""Handlers for the SMTP relay's resources: relay users and the access list (访问控制)."""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.api.routing import route
from gateway.errors import NotFound, Unavailable
from gateway.relay.access import AccessRuleIn, AccessRuleView, Address, client_address
from gateway.relay.services import RelayServices
from gateway.relay.users import RelayUserIn, RelayUserView
from gateway.services import SERVICES

log = logging.getLogger(__name__)


def _relay(request: web.Request) -> RelayServices:
    relay = request.app[SERVICES].relay
    if relay is None:
        raise Unavailable("the SMTP relay is not set up in this process")
    return relay


def _caller(request: web.Request, relay: RelayServices) -> Address | None:
    """Who is changing the access list, as the list itself sees them."""
    forwarded = request.headers.getall("X-Forwarded-For", [])
    return client_address(request.remote, forwarded, relay.trusted_proxies)


@route(
    "POST",
    "/api/v1/relay-users",
    "Create an SMTP relay user (AUTH PLAIN/LOGIN); the password is kept only as a hash",
    body=RelayUserIn,
    response=RelayUserView,
    status=201,
)
async def create_relay_user(request: web.Request, body: RelayUserIn) -> RelayUserView:
    return await _relay(request).users.create(body)


@route("GET", "/api/v1/relay-users", "List SMTP relay users", response=list[RelayUserView])
async def list_relay_users(request: web.Request) -> list[RelayUserView]:
    return await _relay(request).users.list()


@route("DELETE", "/api/v1/relay-users/{username}", "Delete an SMTP relay user", status=204)
async def delete_relay_user(request: web.Request) -> None:
    await _relay(request).users.delete(request.match_info["username"])


@route(
    "POST",
    "/api/v1/access-rules",
    "Allow an address range (a bare IP is one host); once any exist, others are refused. "
    "409 would_lock_out if the list would then leave out the caller's own address",
    body=AccessRuleIn,
    response=AccessRuleView,
    status=201,
)
async def create_access_rule(request: web.Request, body: AccessRuleIn) -> AccessRuleView:
    relay = _relay(request)
    return await relay.access.create(body, _caller(request, relay))


@route(
    "GET",
    "/api/v1/access-rules",
    "List access rules",
    response=list[AccessRuleView],
    query=(("name", "names containing this"), ("ip", "only rules that cover this address")),
)
async def list_access_rules(request: web.Request) -> list[AccessRuleView]:
    return await _relay(request).access.list(
        request.query.get("name") or None, request.query.get("ip") or None
    )


@route(
    "DELETE",
    "/api/v1/access-rules/{id}",
    "Delete an access rule (409 would_lock_out if the rules left would shut out the caller)",
    status=204,
)
async def delete_access_rule(request: web.Request) -> None:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound(f"no access rule with id {raw!r}", "id")
    relay = _relay(request)
    await relay.access.delete(int(raw), _caller(request, relay))
