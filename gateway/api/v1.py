"""Handlers of /api/v1: thin, they decode, call a service, and encode."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta

from gateway.accounts import AccountView
from gateway.api.middleware import API_KEY
from gateway.api.routing import json_response, route
from gateway.errors import Invalid
from gateway.messages import Accepted, Ingress, MessageDetail, MessageIn
from gateway.model import ApiKey
from gateway.services import SERVICES

Name = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\s/][^/]*$")]


class AccountIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A sender account: a real one with ``config``, or ``sandbox: true``."""

    channel: Annotated[str, Meta(min_length=1, max_length=64)]
    name: Name
    sandbox: bool = False
    config: dict[str, Any] | None = None


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


def _int_query(
    request: web.Request, name: str, default: int | None, lo: int, hi: int
) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"{name} must be a whole number", name) from None
    if not lo <= value <= hi:
        raise Invalid(f"{name} must be between {lo} and {hi}", name)
    return value


@route(
    "GET",
    "/api/v1/health",
    "Is the gateway up and its database reachable?",
    response=Health,
    public=True,
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
)
async def post_message(request: web.Request, msg: MessageIn) -> web.Response:
    services = request.app[SERVICES]
    key: ApiKey = request[API_KEY]
    header_key = request.headers.get("Idempotency-Key")
    if header_key and not msg.idempotency_key:
        msg = msgspec.structs.replace(msg, idempotency_key=header_key[:200])
    ingress = Ingress("http", {"api_key": key.name, "remote": request.remote}, f"api:{key.id}")
    accepted = await services.messages.accept(msg, ingress)
    headers = {"Idempotent-Replayed": "true"} if accepted.replayed else None
    return json_response(accepted, 202, headers)


@route(
    "GET",
    "/api/v1/messages/{id}",
    "A message with each delivery's status and history",
    response=MessageDetail,
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
    query=(("channel", "only this channel"), ("q", "search names and addresses")),
)
async def list_accounts(request: web.Request) -> list[AccountView]:
    return await request.app[SERVICES].accounts.list(
        request.query.get("channel") or None, request.query.get("q") or None
    )


@route(
    "GET", "/api/v1/accounts/{name}", "One sender account (secrets masked)", response=AccountView
)
async def get_account(request: web.Request) -> AccountView:
    return await request.app[SERVICES].accounts.get(request.match_info["name"])


@route(
    "PATCH",
    "/api/v1/accounts/{name}",
    "Change an account's config (checked again)",
    body=AccountPatch,
    response=AccountView,
)
async def patch_account(request: web.Request, body: AccountPatch) -> AccountView:
    services = request.app[SERVICES]
    name = request.match_info["name"]
    view = await services.accounts.update(name, body.config)
    services.messages.forget_account(name)
    return view


@route("DELETE", "/api/v1/accounts/{name}", "Delete an account no delivery waits on", status=204)
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
    query=(
        ("account", "only this account"),
        ("recipient", "only this recipient"),
        ("before", "page: ids below this"),
        ("limit", "page size, 1-500 (50)"),
    ),
)
async def list_sandbox(request: web.Request) -> SandboxList:
    limit = _int_query(request, "limit", 50, 1, 500) or 50
    rows = await request.app[SERVICES].store.list_sandbox(
        request.query.get("account") or None,
        request.query.get("recipient") or None,
        _int_query(request, "before", None, 1, 2**62),
        limit,
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
