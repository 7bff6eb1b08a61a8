"""The plugin author's reference: every hook msggate calls, when, with what, and what it wants back.

A plugin is a module (or object) with functions decorated by ``gateway.hookimpl`` and named after
the hooks below, listed under the entry-point group ``msggate.plugins`` of its distribution::

    [options.entry_points]
    msggate.plugins =
        feishu = msggate_feishu.plugin

Hooks are synchronous and cheap: they return objects, and the asynchronous work lives on those
objects (a channel's ``send``). Arguments are passed by name, so an implementation may accept
only the ones it needs. New arguments may be added to a hook at any time; renaming or removing
one goes through a deprecation warning first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from gateway.callbacks import CallbackRoute, FakeProvider
    from gateway.channel import Channel, Failed, Outgoing
    from gateway.events import DeliveryEvent
    from gateway.relay.route import Route, RoutingTable

hookspec = pluggy.HookspecMarker("msggate")


@hookspec
def msggate_channels() -> list[Channel]:
    """Return the channels this plugin provides (an empty list for none).

    Called once at start, before the gateway accepts traffic. Each item is a
    :class:`gateway.channel.Channel`: its ``name`` must be unique across all plugins (a clash
    stops the gateway at start, naming both plugins), and it must declare ``content_kinds``,
    ``account_type`` and implement ``async send(account, outgoing)``. The account type lists its
    ``secret_fields`` (sealed at rest, never shown) and its ``destination_fields`` (where and
    how safely the secrets are sent: host, port, TLS, endpoint, URL ...): an edit that changes
    a destination field must give every stored secret again. An account type that declares no
    ``destination_fields`` has every non-secret field counted as one.
    """


@hookspec
def msggate_filter_outgoing(channel: str, account: str, outgoing: Outgoing) -> Failed | None:
    """Inspect a delivery just before it is sent; return a ``Failed`` to block it.

    Called in the dispatcher for every attempt, after the delivery is claimed and before the
    channel's ``send``. ``channel`` and ``account`` are names; ``outgoing`` is the delivery.
    Return ``None`` to let it through. The first ``Failed`` returned by any plugin marks the
    delivery failed with that reason, without calling the provider. Must be fast and must not
    block: it runs on the event loop. A filter that raises counts as a temporary failure: the
    delivery is retried with backoff (and fails after the attempt limit), never sent unfiltered.
    """


@hookspec
def msggate_delivery_event(event: DeliveryEvent) -> None:
    """Observe a delivery event after it has been committed.

    Called for every outcome the dispatcher records — ``event.kind`` is ``sent``, ``retrying``,
    ``failed`` or ``deferred`` (a rate limit's slot is later; not an attempt), and a sandbox
    account's recorded delivery is ``sent`` with a ``sandbox:`` provider id — and for every
    provider receipt (``receipt``, with ``detail["status"]`` ``delivered`` or
    ``undelivered``), once it is committed. ``event.detail`` holds the attempt number, the node,
    the provider's id and answer, or the code and reason. Use it for metrics, audit trails or
    webhooks; schedule slow work with ``asyncio.create_task`` rather than doing it here. The
    return value is ignored and an exception is logged, never propagated.
    """


@hookspec
def msggate_callback_routes() -> list[CallbackRoute]:
    """Return HTTP routes providers call back on: delivery receipts, call results.

    Called once at start. Each :class:`gateway.callbacks.CallbackRoute` is mounted under
    ``/callbacks`` (``path="/sms/aliyun"`` serves ``/callbacks/sms/aliyun``) without API-key
    authentication, so its handler must verify the provider's signature or token itself. The
    handler gets the request and a :class:`gateway.receipts.Receipts`; it calls
    ``await receipts.record(channel, [Receipt(...)])`` to mark deliveries ``delivered`` or
    ``undelivered`` by the provider's id, and answers what the provider expects. A route whose
    path names the account (``/sms/aliyun/{account}/{token}``) looks it up with
    ``await receipts.account(name)`` to check the caller against it, and sets
    ``Receipt.account`` so that the push settles only that account's deliveries.
    """


@hookspec
def msggate_fake_providers() -> list[FakeProvider]:
    """Return local fakes of the providers this plugin talks to, for tests and demos.

    Called by ``msggate fake-providers`` and by test fixtures, never by a serving gateway. Each
    :class:`gateway.callbacks.FakeProvider` is an aiohttp application mounted at ``/<name>``;
    a fake should check requests the way the real provider does (signatures, tokens, required
    fields) so that a client that passes against it is right.
    """


@hookspec(firstresult=True)
def msggate_route_address(
    address: str, sender: str, relay_domain: str | None, table: RoutingTable
) -> Route | None:
    """Say where an address given to the SMTP relay (``RCPT TO``) goes.

    Called by the SMTP relay for each ``RCPT TO`` of a client allowed to relay, before the
    address is accepted. ``address`` is the recipient as the client gave it, ``sender`` the
    envelope sender (``""`` for the null sender ``<>``), ``relay_domain`` is
    ``MSGGATE_RELAY_DOMAIN`` (None if unset) and ``table`` the
    :class:`gateway.relay.route.RoutingTable` (default account, accounts by sender domain,
    sub-domain routes from the config file). Return a :class:`gateway.relay.route.Deliver`
    (channel, account, the channel's own recipient), an ``Action`` (a tiered push action), an
    ``Unroutable`` whose reason the client sees with 550 5.1.1, or None to let other plugins
    answer; the first answer that is not None wins. The built-in ``gateway.relay.routing`` runs
    last: ordinary addresses to e-mail, ``<recipient>@<sub-domain>.<relay_domain>`` by the
    table. Runs on the event loop for every RCPT: synchronous, fast, no I/O (never ``async``).
    """
