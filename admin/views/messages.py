"""消息日志: every message, filtered by channel, status, time and text, and one message's whole
lifecycle: how it came in (HTTP or SMTP), each attempt, the provider's answers, receipts."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from aiohttp import web

from admin.forms import Form, page_number
from admin.render import render, translate
from admin.routing import ANY, route
from admin.views.common import channel_label, console, query_text, services, user
from gateway.errors import GatewayError, Invalid
from gateway.message_log import STATUSES

TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M")
PER_PAGE = 25


def parse_time(text: str, time_zone: str, field: str, end: bool = False) -> dt.datetime | None:
    """yyyy-mm-dd [HH:mm[:ss]] in the operator's time zone; a bare date that ends a period
    includes the whole day."""
    text = text.strip()
    if not text:
        return None
    zone = zoneinfo.ZoneInfo(time_zone)
    for pattern in TIME_FORMATS:
        try:
            return dt.datetime.strptime(text, pattern).replace(tzinfo=zone)
        except ValueError:
            continue
    try:
        day = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=zone)
    except ValueError:
        raise Invalid("expected yyyy-mm-dd HH:mm:ss", field) from None
    return day + dt.timedelta(days=1) if end else day


@route("GET", "/messages", "messages.list", ANY)
async def list_messages(request: web.Request) -> web.Response:
    t = translate(request)
    tz = user(request).time_zone
    values = {k: query_text(request, k) for k in ("channel", "status", "since", "until", "q")}
    form = Form(values=values)
    page = None
    try:
        page = await console(request).log.search(
            channel=values["channel"] or None,
            status=values["status"] or None,
            since=parse_time(values["since"], tz, "since"),
            until=parse_time(values["until"], tz, "until", end=True),
            text=values["q"] or None,
            page=page_number(request),
            per_page=PER_PAGE,
        )
    except GatewayError as exc:
        form.fail(exc, t, set(values) | {"q"}, aliases={"text": "q"})
    channels = sorted(services(request).plugins.channels)
    return render(
        request,
        "messages/list.html",
        form=form,
        page=page,
        statuses=STATUSES,
        channels=[(c, channel_label(request, c)) for c in channels],
        label=lambda name: channel_label(request, name),
    )


@route("GET", "/messages/{id}", "messages.detail", ANY)
async def detail(request: web.Request) -> web.Response:
    s = services(request)
    message = await s.messages.detail(request.match_info["id"])
    account = await s.store.account_by_name(message.account)
    return render(
        request,
        "messages/detail.html",
        message=message,
        label=channel_label(request, message.channel),
        sandbox=account is not None and account.sandbox,
        statuses=sorted({d.status for d in message.deliveries}),
    )
