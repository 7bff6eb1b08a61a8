"""What plugins contribute besides channels: provider callback routes and fake providers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

if TYPE_CHECKING:
    from gateway.receipts import Receipts

CALLBACK_PREFIX = "/callbacks"


class CallbackRoute(msgspec.Struct, frozen=True):
    """A public HTTP route for a provider to call (delivery receipts, call results).

    ``path`` is relative to ``/callbacks`` (e.g. ``/sms/aliyun``). The route needs no API key,
    so ``handler(request, receipts)`` must verify the caller the way the provider documents
    (signature, token) and answer what the provider expects.
    """

    method: str
    path: str
    handler: Callable[[web.Request, Receipts], Awaitable[web.StreamResponse]]


class FakeProvider(msgspec.Struct, frozen=True):
    """A local stand-in for a provider's API, for tests and demos (``msggate fake-providers``).

    ``make_app()`` returns an aiohttp application serving the provider's paths; it is mounted at
    ``/<name>`` so an account's ``endpoint`` of ``http://host:port/<name>`` points at it.
    """

    name: str
    make_app: Callable[[], web.Application]
    description: str = ""


def fake_providers_app(fakes: Sequence[FakeProvider]) -> web.Application:
    """One application serving every fake under ``/<name>``."""
    app = web.Application()
    for fake in fakes:
        app.add_subapp(f"/{fake.name}/", fake.make_app())
    return app
