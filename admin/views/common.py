"""What every screen needs: the services, the user, the translator, confirmations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from admin.forms import read_form, refuse_unstorable
from admin.render import redirect, render, translate
from admin.session import SESSION, TOKEN
from gateway.console_store import ConsoleUserRow
from gateway.errors import GatewayError, Unavailable
from gateway.relay.services import RelayServices
from gateway.services import SERVICES, Services


def services(request: web.Request) -> Services:
    return request.config_dict[SERVICES]


def console(request: web.Request):
    from admin.app import CONSOLE

    return request.config_dict[CONSOLE]


def relay(request: web.Request) -> RelayServices:
    found = services(request).relay
    if found is None:
        raise Unavailable("the SMTP relay is not set up in this process")
    return found


def user(request: web.Request) -> ConsoleUserRow:
    return request[SESSION].user


def token(request: web.Request) -> str | None:
    return request.get(TOKEN)


def channel_label(request: web.Request, name: str) -> str:
    t = translate(request)
    key = f"channels.{name}"
    text = t(key)
    return name if text == key else text


def confirm(
    request: web.Request,
    form: Mapping[str, str],
    title: str,
    message: str,
    hidden: Mapping[str, Any] | None = None,
) -> web.Response | None:
    """None once the operator confirmed; else the confirmation page (works without script)."""
    if form.get("confirmed") == "1":
        return None
    referer = urlsplit(request.headers.get("Referer", ""))
    cancel = referer.path if referer.path.startswith("/admin/") else "/admin/"
    if referer.query and cancel != "/admin/":
        cancel += "?" + referer.query
    return render(
        request,
        "confirm.html",
        title=title,
        message=message,
        action=request.path,
        cancel=cancel,
        hidden={k: str(v) for k, v in (hidden or {}).items()},
    )


@contextmanager
def refusal_redirect(request: web.Request, list_route: str) -> Iterator[None]:
    """Around a confirmed deletion: a refusal (GatewayError) goes back to ``list_route``
    with a notice that says why it was not deleted."""
    try:
        yield
    except GatewayError as exc:
        raise redirect(
            request,
            list_route,
            "notice.delete_refused",
            "error",
            notice_args={"reason": exc.message},
        ) from None


async def delete_posted(
    request: web.Request,
    field: str,
    title: str,
    message: Callable[[str], str],
    delete: Callable[[str], Awaitable[object]],
    list_route: str,
    done: str,
) -> web.StreamResponse:
    """Delete what the posted form names in ``field``: the confirmation page (``title``,
    ``message(name)``) until the operator confirmed, then ``delete(name)``, back to
    ``list_route`` with the notice ``done`` or, refused, with why."""
    posted = await read_form(request)
    name = posted.get(field, "")
    page = confirm(request, posted, title, message(name), hidden={field: name})
    if page is not None:
        return page
    with refusal_redirect(request, list_route):
        await delete(name)
    raise redirect(request, list_route, done, notice_args={"name": name})


def query_text(request: web.Request, name: str, limit: int = 200) -> str:
    value = request.query.get(name, "")
    refuse_unstorable(request, name, value)
    return value.strip()[:limit]
