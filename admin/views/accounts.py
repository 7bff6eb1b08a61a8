"""系统设置 → 账户设置: sender accounts of every loaded channel.

List and search by sender address; create (choose the type first), view, edit, delete. The
account service checks each save against the provider through the channel plugin; its reason
is shown next to the field it names. Secrets are write-only, and an edit that changes where
they are sent (host, endpoint, TLS ...) asks for each stored one again.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from admin.accountform import FieldSpec, address_of, decode, field_specs, initial_values
from admin.forms import Form, page_number, paginate, read_form
from admin.i18n import Translate
from admin.render import redirect, render, translate
from admin.routing import ANY, OPERATOR, route
from admin.views.common import channel_label, confirm, query_text, refusal_redirect, services
from gateway.accounts import MASK, AccountView, SecretRequired
from gateway.api.v1 import AccountIn
from gateway.channel import Channel, destination_fields
from gateway.errors import GatewayError, Invalid, NotFound, split_validation_error


def _channel(request: web.Request, name: str) -> Channel:
    channel = services(request).plugins.channel(name)
    if channel is None:
        raise NotFound(f"channel {name!r} is not loaded")
    return channel


def _choices(request: web.Request) -> list[dict[str, str]]:
    t = translate(request)
    return [
        {"name": name, "label": channel_label(request, name), "hint": t(f"channel_hints.{name}")}
        for name in sorted(services(request).plugins.channels)
    ]


@route("GET", "/accounts", "accounts.list", ANY)
async def list_accounts(request: web.Request) -> web.Response:
    q = query_text(request, "q")
    channel = query_text(request, "channel", 64) or None
    views = await services(request).accounts.list(channel, q or None)
    page = paginate(views, page_number(request))
    rows = [
        {
            "view": v,
            "label": channel_label(request, v.channel),
            "address": address_of(v.channel, v.config),
        }
        for v in page.items
    ]
    return render(
        request,
        "accounts/list.html",
        rows=rows,
        page=page,
        q=q,
        channel=channel or "",
        channels=_choices(request),
    )


@route("GET", "/accounts/new", "accounts.choose", OPERATOR)
async def choose(request: web.Request) -> web.Response:
    return render(request, "accounts/choose.html", channels=_choices(request))


def _form_page(
    request: web.Request,
    channel: Channel,
    form: Form,
    view: AccountView | None = None,
    status: int = 200,
    secrets_again: frozenset[str] = frozenset(),
) -> web.Response:
    return render(
        request,
        "accounts/form.html",
        status=status,
        channel=channel.name,
        channel_label=channel_label(request, channel.name),
        specs=field_specs(channel),
        form=form,
        view=view,
        stored_secrets={k for k, v in (view.config if view else {}).items() if v == MASK},
        destinations=sorted(destination_fields(channel.account_type)),
        secrets_again=secrets_again,
    )


def _ask_again(form: Form, exc: SecretRequired, specs: list[FieldSpec], t: Translate) -> None:
    """Mark every stored secret the edit kept as required again, saying which change did it."""
    labels = {s.name: s.label(t) for s in specs}
    changed = t("accounts.list_separator").join(labels.get(f, f) for f in exc.changed)
    for name in exc.secrets:
        form.errors[name] = t("accounts.secret_again", fields=changed)


@route("GET", "/accounts/new/{channel}", "accounts.new", OPERATOR)
async def new(request: web.Request) -> web.Response:
    channel = _channel(request, request.match_info["channel"])
    values = initial_values(field_specs(channel), None)
    return _form_page(request, channel, Form(values=values))


def _check_name(channel: str, name: str, config: dict[str, Any] | None, sandbox: bool) -> None:
    """The API's own rules for a new account (name, channel), so both refuse the same."""
    body = {"channel": channel, "name": name, "sandbox": sandbox, "config": config}
    try:
        msgspec.convert(body, AccountIn)
    except msgspec.ValidationError as exc:
        message, field = split_validation_error(exc)
        if field == "name" and name and "pattern" in message:
            message = "a name has no '/' and does not start with a space"
        raise Invalid(message, field) from None


@route("POST", "/accounts/new/{channel}", "accounts.create", OPERATOR)
async def create(request: web.Request) -> web.StreamResponse:
    channel = _channel(request, request.match_info["channel"])
    t = translate(request)
    posted = await read_form(request)
    specs = field_specs(channel)
    config, errors = decode(specs, posted, editing=False, t=t)
    form = Form(values=posted, errors=errors)
    name = posted.get("name", "").strip()
    sandbox = posted.get("sandbox") == "on"
    fields = {"name", *(s.name for s in specs)}
    if not form.failed:
        try:
            _check_name(channel.name, name, None if sandbox else config, sandbox)
            await services(request).accounts.create(
                channel.name, name, None if sandbox else config, sandbox
            )
        except GatewayError as exc:
            form.fail(exc, t, fields, strip="config.")
    if form.failed:
        return _form_page(request, channel, form, status=422)
    services(request).messages.forget_account(name)
    raise redirect(
        request, "accounts.view", "notice.account_created", notice_args={"name": name}, name=name
    )


@route("GET", "/account/{name}", "accounts.view", ANY)
async def view(request: web.Request) -> web.Response:
    account = await services(request).accounts.get(request.match_info["name"])
    channel = services(request).plugins.channel(account.channel)
    specs = field_specs(channel) if channel is not None else []
    known = {s.name for s in specs}
    extra = {k: v for k, v in account.config.items() if k not in known}
    return render(
        request,
        "accounts/view.html",
        account=account,
        label=channel_label(request, account.channel),
        specs=specs,
        extra=extra,
        loaded=channel is not None,
        mask=MASK,
    )


@route("GET", "/account/{name}/edit", "accounts.edit", OPERATOR)
async def edit(request: web.Request) -> web.Response:
    account = await services(request).accounts.get(request.match_info["name"])
    channel = _channel(request, account.channel)
    if account.sandbox:
        raise Invalid("a sandbox account has no configuration to change")
    values = initial_values(field_specs(channel), account.config)
    return _form_page(request, channel, Form(values=values), view=account)


@route("POST", "/account/{name}/edit", "accounts.update", OPERATOR)
async def update(request: web.Request) -> web.StreamResponse:
    s = services(request)
    account = await s.accounts.get(request.match_info["name"])
    channel = _channel(request, account.channel)
    t = translate(request)
    posted = await read_form(request)
    specs = field_specs(channel)
    config, errors = decode(specs, posted, editing=True, t=t)
    form = Form(values=posted, errors=errors)
    again: frozenset[str] = frozenset()
    if not form.failed:
        try:
            await s.accounts.update(account.name, config)
        except SecretRequired as exc:
            _ask_again(form, exc, specs, t)
            again = frozenset(exc.secrets)
        except GatewayError as exc:
            form.fail(exc, t, {s.name for s in specs}, strip="config.")
    if form.failed:
        return _form_page(request, channel, form, account, 422, again)
    s.messages.forget_account(account.name)
    raise redirect(
        request,
        "accounts.view",
        "notice.account_saved",
        notice_args={"name": account.name},
        name=account.name,
    )


@route("POST", "/account/{name}/delete", "accounts.delete", OPERATOR)
async def delete(request: web.Request) -> web.StreamResponse:
    s = services(request)
    name = request.match_info["name"]
    account = await s.accounts.get(name)
    t = translate(request)
    posted = await read_form(request)
    page = confirm(
        request, posted, t("accounts.delete_title"), t("accounts.delete_confirm", name=name)
    )
    if page is not None:
        return page
    with refusal_redirect(request, "accounts.list"):
        await s.accounts.delete(account.name)
    s.messages.forget_account(account.name)
    raise redirect(request, "accounts.list", "notice.account_deleted", notice_args={"name": name})
