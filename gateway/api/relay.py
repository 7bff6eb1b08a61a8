"""Handlers for the SMTP relay's resources: relay users and the access list (访问控制)."""

from __future__ import annotations

import logging
from typing import Annotated

from aiohttp import web
from msgspec import Meta

from gateway.api.routing import PARAMS, Param, route
from gateway.errors import Unavailable
from gateway.relay.access import AccessRuleIn, AccessRuleView, Address, client_address
from gateway.relay.services import RelayServices
from gateway.relay.users import RelayUserIn, RelayUserView, Username
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
    errors=(409,),
)
async def create_relay_user(request: web.Request, body: RelayUserIn) -> RelayUserView:
    return await _relay(request).users.create(body)


@route("GET", "/api/v1/relay-users", "List SMTP relay users", response=list[RelayUserView])
async def list_relay_users(request: web.Request) -> list[RelayUserView]:
    return await _relay(request).users.list()


@route(
    "DELETE",
    "/api/v1/relay-users/{username}",
    "Delete an SMTP relay user",
    status=204,
    params=(Param("username", "the relay user's name", Username),),
)
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
    errors=(409,),
)
async def create_access_rule(request: web.Request, body: AccessRuleIn) -> AccessRuleView:
    relay = _relay(request)
    return await relay.access.create(body, _caller(request, relay))


@route(
    "GET",
    "/api/v1/access-rules",
    "List access rules",
    response=list[AccessRuleView],
    params=(
        Param("name", "names containing this"),
        Param("ip", "only rules that cover this address (IPv4 or IPv6)"),
    ),
)
async def list_access_rules(request: web.Request) -> list[AccessRuleView]:
    params = request[PARAMS]
    return await _relay(request).access.list(params["name"], params["ip"])


@route(
    "DELETE",
    "/api/v1/access-rules/{id}",
    "Delete an access rule (409 would_lock_out if the rules left would shut out the caller)",
    status=204,
    params=(Param("id", "the rule's id", Annotated[int, Meta(ge=1, le=2**63 - 1)]),),
    errors=(409,),
)
async def delete_access_rule(request: web.Request) -> None:
    relay = _relay(request)
    await relay.access.delete(request[PARAMS]["id"], _caller(request, relay))
