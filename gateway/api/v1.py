"""Handlers of /api/v1: thin, they decode, call a service, and encode."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar

import msgspec
from aiohttp import web
from msgspec import Meta

from gateway.accounts import AccountView
from gateway.api.middleware import API_KEY
from gateway.api.routing import PARAMS, Param, check_storable, json_response, route
from gateway.errors import Invalid
from gateway.messages import (
    IDEMPOTENCY_KEY_MAX,
    Accepted,
    Ingress,
    MessageDetail,
    MessageIn,
)
from gateway.model import ApiKey
from gateway.services import SERVICES

Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\s/][^/]*$")]
ACCOUNT_NAME = Param("name", "the account's name", Name)


class AccountIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A sender account: a real one with ``config``, or ``sandbox: true``."""

    channel: Annotated[str, Meta(min_length=1, max_length=64)]
    name: Name
    sandbox: bool = False
    config: dict[str, Any] | None = None

    # OpenAPI: the service refuses a real account without config
    schema_rules: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {"required": ["sandbox"], "properties": {"sandbox": {"const": True}}},
            {"required": ["config"], "properties": {"config": {"type": "object"}}},
        ]
    }


class AccountPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields of ``config`` to change; a secret left out (or sent masked) keeps its value,
    unless a destination field (host, port, TLS, endpoint, URL ...) changes: then every stored
    secret must be given again (422 ``secret_required`` names it)."""

    config: dict[str, Any]


class Health(msgspec.Struct):
    status: str
    database: str


class SandboxMessage(msgspec.Struct):
    id: int
    delivery_id: str
    message_id: str
    channel: str
    account: str
    recipient: str
    subject: str | None
    text: str | None
    html: str | None
    variables: dict[str, Any]
    recorded_at: str


class SandboxList(msgspec.Struct):
    items: list[SandboxMessage]
    next_before: int | None


class PluginOut(msgspec.Struct):
    name: str
    version: str | None
    channels: list[str]


@route(
    "GET",
    "/api/v1/health",
    "Is the gateway up and its database reachable?",
    response=Health,
    public=True,
    also=(503,),
)
async def health(request: web.Request) -> web.Response:
    try:
        await request.app[SERVICES].store.ping()
    except Exception as exc:
        return json_response(Health("unavailable", f"unreachable: {type(exc).__name__}"), 503)
    return json_response(Health("ok", "ok"))


@route(
    "POST",
    "/api/v1/messages",
    "Accept a message: 202 once it is committed",
    body=MessageIn,
    response=Accepted,
    status=202,
    errors=(409,),
)
async def post_message(request: web.Request, msg: MessageIn) -> web.Response:
    services = request.app[SERVICES]
    key: ApiKey = request[API_KEY]
    msg = _with_header_key(msg, request.headers.get("Idempotency-Key"))
    ingress = Ingress("http", {"api_key": key.name, "remote": request.remote}, f"api:{key.id}")
    accepted = await services.messages.accept(msg, ingress)
    headers = {"Idempotent-Replayed": "true"} if accepted.replayed else None
    return json_response(accepted, 202, headers)


def _with_header_key(msg: MessageIn, header: str | None) -> MessageIn:
    """The ``Idempotency-Key`` header as the body's field: refused, never cut, when too long,
    and refused when it differs from the field (which one would the caller mean?)."""
    if not header:
        return msg
    field = "Idempotency-Key"
    if len(header) > IDEMPOTENCY_KEY_MAX:
        raise Invalid(
            f"the key is {len(header)} characters long; at most {IDEMPOTENCY_KEY_MAX}", field
        )
    check_storable(header, field)
    if msg.idempotency_key is None:
        return msgspec.structs.replace(msg, idempotency_key=header)
    if msg.idempotency_key != header:
        raise Invalid("the header and the body's idempotency_key differ: send one", field)
    return msg


@route(
    "GET",
    "/api/v1/messages/{id}",
    "A message with each delivery's status and history",
    response=MessageDetail,
    params=(Param("id", "the message id", uuid.UUID),),
)
async def get_message(request: web.Request) -> MessageDetail:
    return await request.app[SERVICES].messages.detail(request.match_info["id"])


@route(
    "POST",
    "/api/v1/accounts",
    "Create a sender account (checked against the provider)",
    body=AccountIn,
    response=AccountView,
    status=201,
    errors=(409,),
)
async def create_account(request: web.Request, body: AccountIn) -> AccountView:
    return await request.app[SERVICES].accounts.create(
        body.channel, body.name, body.config, body.sandbox
    )


@route(
    "GET",
    "/api/v1/accounts",
    "List sender accounts",
    response=list[AccountView],
    params=(Param("channel", "only this channel"), Param("q", "search names and addresses")),
)
async def list_accounts(request: web.Request) -> list[AccountView]:
    params = request[PARAMS]
    return await request.app[SERVICES].accounts.list(params["channel"], params["q"])


@route(
    "GET",
    "/api/v1/accounts/{name}",
    "One sender account (secrets masked)",
    response=AccountView,
    params=(ACCOUNT_NAME,),
)
async def get_account(request: web.Request) -> AccountView:
    return await request.app[SERVICES].accounts.get(request.match_info["name"])


@route(
    "PATCH",
    "/api/v1/accounts/{name}",
    "Change an account's config (checked again)",
    body=AccountPatch,
    response=AccountView,
    params=(ACCOUNT_NAME,),
    errors=(409,),
)
async def patch_account(request: web.Request, body: AccountPatch) -> AccountView:
    services = request.app[SERVICES]
    name = request.match_info["name"]
    view = await services.accounts.update(name, body.config)
    services.messages.forget_account(name)
    return view


@route(
    "DELETE",
    "/api/v1/accounts/{name}",
    "Delete an account no delivery waits on",
    status=204,
    params=(ACCOUNT_NAME,),
    errors=(409,),
)
async def delete_account(request: web.Request) -> None:
    services = request.app[SERVICES]
    name = request.match_info["name"]
    await services.accounts.delete(name)
    services.messages.forget_account(name)


@route(
    "GET",
    "/api/v1/sandbox/messages",
    "What sandbox accounts recorded instead of sending",
    response=SandboxList,
    params=(
        Param("account", "only this account"),
        Param("recipient", "only this recipient"),
        Param("before", "page: ids below this", Annotated[int, Meta(ge=1, le=2**62)]),
        Param("limit", "page size (50)", Annotated[int, Meta(ge=1, le=500)]),
    ),
)
async def list_sandbox(request: web.Request) -> SandboxList:
    params = request[PARAMS]
    limit = params["limit"] or 50
    rows = await request.app[SERVICES].store.list_sandbox(
        params["account"], params["recipient"], params["before"], limit
    )
    items = [
        SandboxMessage(
            r.id,
            str(r.delivery_id),
            str(r.message_id),
            r.channel,
            r.account,
            r.recipient,
            r.subject,
            r.body_text,
            r.body_html,
            r.variables,
            r.recorded_at.isoformat(),
        )
        for r in rows
    ]
    return SandboxList(items, items[-1].id if len(items) == limit else None)


@route("GET", "/api/v1/plugins", "Loaded plugins and their channels", response=list[PluginOut])
async def list_plugins(request: web.Request) -> list[PluginOut]:
    return [
        PluginOut(p.name, p.version, p.channels) for p in request.app[SERVICES].plugins.describe()
    ]
