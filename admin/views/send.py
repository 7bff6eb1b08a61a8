"""发送测试消息: send one message through any account, then follow it in the log.

It goes through the same accept path as the HTTP API (``MessageService.accept``), recorded
with ingress "console" and the operator's name. Channels that send approved templates only
(SMS, voice, outbound calls) take the template code and its variables (``name=value`` lines or
a JSON object); the channel itself says what is missing.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from admin.forms import Form, parse_json, parse_mapping, read_form
from admin.i18n import Translate
from admin.render import redirect, render, translate
from admin.routing import OPERATOR, route
from admin.session import client_ip
from admin.views.common import channel_label, services, user
from gateway.errors import GatewayError, Invalid
from gateway.messages import Ingress, MessageIn

FIELDS = {"account", "recipients", "subject", "text", "template", "variables"}
_SPLIT = re.compile(r"[\n,;，；]+")


async def _page(request: web.Request, form: Form, status: int = 200) -> web.Response:
    accounts = await services(request).accounts.list()
    return render(
        request,
        "send.html",
        status=status,
        form=form,
        accounts=[
            (a.name, a.channel, channel_label(request, a.channel), a.sandbox) for a in accounts
        ],
    )


def _variables(text: str, t: Translate) -> dict[str, Any]:
    """The variables field: a JSON object, or ``name=value`` lines."""
    text = text.strip()
    if not text:
        return {}
    try:
        value = parse_json(text) if text.startswith("{") else parse_mapping(text)
    except ValueError as exc:
        raise Invalid(t(str(exc)), "variables") from None
    if not isinstance(value, dict):
        raise Invalid(t("errors.mapping"), "variables")
    return value


@route("GET", "/send", "send.form", OPERATOR)
async def form_page(request: web.Request) -> web.Response:
    return await _page(request, Form(values={"account": request.query.get("account", "")}))


@route("POST", "/send", "send.submit", OPERATOR)
async def submit(request: web.Request) -> web.StreamResponse:
    s = services(request)
    t = translate(request)
    posted = await read_form(request)
    form = Form(values=posted)
    me = user(request)
    try:
        name = posted.get("account", "")
        account = await s.store.account_by_name(name) if name else None
        if account is None:
            raise Invalid(t("send.choose_account"), "account")
        recipients = [r.strip() for r in _SPLIT.split(posted.get("recipients", "")) if r.strip()]
        if not recipients:
            raise Invalid(t("errors.required"), "recipients")
        if len(recipients) > 100:
            raise Invalid(t("send.too_many"), "recipients")
        message = MessageIn(
            channel=account.channel,
            account=account.name,
            recipients=recipients,
            subject=posted.get("subject", "").strip()[:998] or None,
            text=posted.get("text", "") or None,
            template=posted.get("template", "").strip()[:200] or None,
            variables=_variables(posted.get("variables", ""), t),
        )
        ingress = Ingress(
            "console", {"user": me.name, "remote": client_ip(request)}, f"console:{me.id}"
        )
        accepted = await s.messages.accept(message, ingress)
    except GatewayError as exc:
        form.fail(exc, t, FIELDS)
        if exc.field == "template" and not posted.get("template", "").strip():
            form.errors["template"] = t("send.template_required")  # the channel's refusal, said
        return await _page(request, form, 422)
    raise redirect(
        request,
        "messages.detail",
        "notice.message_accepted",
        notice_args={"count": len(accepted.deliveries)},
        id=accepted.id,
    )
