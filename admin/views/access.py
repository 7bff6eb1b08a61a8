"""系统设置 → 访问控制: the IP / CIDR allow-list of the HTTP API and the SMTP relay.

The rules live in the relay's access-list service (shared with /api/v1/access-rules). The
console is behind the same list: the service refuses a change that would shut out the
operator's own address (LockOut), and this page says why in the operator's language.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from admin.forms import Form, page_number, paginate, read_form
from admin.render import redirect, render, translate
from admin.routing import ADMIN, ANY, route
from admin.session import client_ip
from admin.views.common import confirm, query_text, relay
from gateway.errors import GatewayError, Invalid, NotFound, split_validation_error
from gateway.relay.access import AccessRuleIn, LockOut, covered, parse_address


def decode_rule(name: str, cidr: str) -> AccessRuleIn:
    """The API's own type and limits for a rule, so the console refuses what the API does."""
    try:
        return msgspec.convert({"name": name, "cidr": cidr}, AccessRuleIn)
    except msgspec.ValidationError as exc:
        raise Invalid(*split_validation_error(exc)) from None


async def _status(request: web.Request) -> dict:
    networks = await relay(request).access.networks()
    address = parse_address(client_ip(request))
    return {
        "address": client_ip(request),
        "restricted": bool(networks),
        "inside": covered(address, networks),
    }


@route("GET", "/access", "access.list", ANY)
async def list_rules(request: web.Request) -> web.Response:
    name = query_text(request, "name")
    ip = query_text(request, "ip", 64)
    form = Form(values={"name": name, "ip": ip})
    rules = []
    try:
        rules = await relay(request).access.list(name or None, ip or None)
    except Invalid as exc:
        form.fail(exc, translate(request), {"ip", "name"})
    page = paginate(rules, page_number(request))
    return render(
        request, "access/list.html", page=page, form=form, access_status=await _status(request)
    )


@route("GET", "/access/new", "access.new", ADMIN)
async def new(request: web.Request) -> web.Response:
    return render(request, "access/form.html", form=Form(), access_status=await _status(request))


@route("POST", "/access/new", "access.create", ADMIN)
async def create(request: web.Request) -> web.StreamResponse:
    t = translate(request)
    posted = await read_form(request)
    form = Form(values=posted)
    access = relay(request).access
    try:
        body = decode_rule(posted.get("name", "").strip(), posted.get("cidr", "").strip())
        rule = await access.create(body, parse_address(client_ip(request)))
    except GatewayError as exc:
        if isinstance(exc, LockOut):  # the service's reason, in the operator's language
            form.errors["cidr"] = t("access.would_lock_out", address=client_ip(request))
        else:
            form.fail(exc, t, {"name", "cidr"})
        return render(
            request,
            "access/form.html",
            status=422,
            form=form,
            access_status=await _status(request),
        )
    raise redirect(
        request,
        "access.list",
        "notice.rule_created",
        notice_args={"name": rule.name, "cidr": rule.cidr},
    )


@route("POST", "/access/{id}/delete", "access.delete", ADMIN)
async def delete(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["id"]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound(f"no access rule with id {raw!r}")
    rule_id = int(raw)
    access = relay(request).access
    t = translate(request)
    rules = await access.list(None, None)
    rule = next((r for r in rules if r.id == rule_id), None)
    if rule is None:
        raise NotFound(f"no access rule with id {rule_id}")
    posted = await read_form(request)
    page = confirm(
        request,
        posted,
        t("access.delete_title"),
        t("access.delete_confirm", name=rule.name, cidr=rule.cidr),
    )
    if page is not None:
        return page
    try:
        await access.delete(rule_id, parse_address(client_ip(request)))
    except LockOut:
        raise redirect(
            request,
            "access.list",
            "notice.delete_refused",
            "error",
            notice_args={"reason": t("access.would_lock_out", address=client_ip(request))},
        ) from None
    raise redirect(
        request,
        "access.list",
        "notice.rule_deleted",
        notice_args={"name": rule.name, "cidr": rule.cidr},
    )
