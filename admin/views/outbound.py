"""系统设置 → 智能外呼账户管理: outbound-call accounts, added inline in the list as the manual
shows (公司名称, AccessKey ID, AccessKey Secret, 主叫号码 → 【添加】), searched by company name.

They are sender accounts of the ``outbound`` channel: the same account service creates them
(checked against the provider) and refuses to delete one that deliveries still wait on.
"""

from __future__ import annotations

from aiohttp import web

from admin.forms import Form, page_number, paginate, read_form
from admin.render import redirect, render, translate
from admin.routing import ANY, OPERATOR, route
from admin.views.accounts import _check_name
from admin.views.common import confirm, query_text, refusal_redirect, services
from gateway.errors import GatewayError, NotFound

CHANNEL = "outbound"
FIELDS = ("company_name", "access_key_id", "access_key_secret", "caller_number")
MORE = ("name", "endpoint", "api")


async def _page(request: web.Request, form: Form, status: int = 200) -> web.Response:
    s = services(request)
    loaded = s.plugins.channel(CHANNEL) is not None
    company = query_text(request, "company")
    views = await s.accounts.list(CHANNEL, None) if loaded else []
    if company:
        views = [
            v for v in views if company.lower() in str(v.config.get("company_name", "")).lower()
        ]
    return render(
        request,
        "outbound/list.html",
        status=status,
        loaded=loaded,
        page=paginate(views, page_number(request)),
        company=company,
        form=form,
    )


@route("GET", "/outbound", "outbound.list", ANY)
async def list_outbound(request: web.Request) -> web.Response:
    return await _page(request, Form(values={"api": "dyvms"}))


@route("POST", "/outbound", "outbound.create", OPERATOR)
async def create(request: web.Request) -> web.StreamResponse:
    s = services(request)
    if s.plugins.channel(CHANNEL) is None:
        raise NotFound("the outbound channel is not loaded")
    t = translate(request)
    posted = await read_form(request)
    form = Form(values={k: posted.get(k, "") for k in (*FIELDS, *MORE) if k != "access_key_secret"})
    config = {k: posted.get(k, "").strip() for k in FIELDS if posted.get(k, "").strip()}
    for key in ("endpoint", "api"):
        if posted.get(key, "").strip():
            config[key] = posted[key].strip()
    name = posted.get("name", "").strip() or config.get("company_name", "")
    try:
        _check_name(CHANNEL, name, config, False)
        await s.accounts.create(CHANNEL, name, config, False)
    except GatewayError as exc:
        # the name defaults to the company name: a clash is the company field's to show
        aliases = None if posted.get("name", "").strip() else {"name": "company_name"}
        form.fail(exc, t, {*FIELDS, *MORE}, strip="config.", aliases=aliases)
        return await _page(request, form, 422)
    s.messages.forget_account(name)
    raise redirect(request, "outbound.list", "notice.outbound_created", notice_args={"name": name})


@route("POST", "/outbound/{name}/delete", "outbound.delete", OPERATOR)
async def delete(request: web.Request) -> web.StreamResponse:
    s = services(request)
    account = await s.accounts.get(request.match_info["name"])
    if account.channel != CHANNEL:
        raise NotFound(f"no outbound account named {account.name!r}")
    t = translate(request)
    posted = await read_form(request)
    company = account.config.get("company_name", account.name)
    page = confirm(
        request, posted, t("outbound.delete_title"), t("outbound.delete_confirm", name=company)
    )
    if page is not None:
        return page
    with refusal_redirect(request, "outbound.list"):
        await s.accounts.delete(account.name)
    s.messages.forget_account(account.name)
    raise redirect(
        request, "outbound.list", "notice.outbound_deleted", notice_args={"name": company}
    )
