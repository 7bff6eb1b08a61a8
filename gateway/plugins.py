"""The one owner of the pluggy manager: loads plugins, checks them, and exposes typed calls.

Core code never calls ``pm.hook.*`` directly; it goes through :class:`Plugins`.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Iterable
from typing import Any

import msgspec
import pluggy

from gateway import hookspecs
from gateway.callbacks import CallbackRoute, FakeProvider
from gateway.channel import Channel, ContentKind, Failed, Outgoing
from gateway.events import DeliveryEvent
from gateway.relay.route import Route, RoutingTable

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "msggate.plugins"


class PluginConflict(Exception):
    """Two plugins claim the same channel name: the gateway must not start."""


class PluginProblem(msgspec.Struct, frozen=True):
    """A plugin that could not be loaded or broke the contract, and why."""

    plugin: str
    reason: str


class PluginInfo(msgspec.Struct, frozen=True):
    """What ``msggate plugins`` shows for one loaded plugin."""

    name: str
    distribution: str | None
    version: str | None
    channels: list[str]


def contract_problem(channel: Any) -> str | None:
    """Why ``channel`` does not meet the channel contract, or None if it does."""
    name = getattr(channel, "name", None)
    if not isinstance(name, str) or not name:
        return f"channel {channel!r} has no name"
    kinds = getattr(channel, "content_kinds", None)
    if not kinds or not all(isinstance(k, ContentKind) for k in kinds):
        return f"channel {name!r}: content_kinds must be a non-empty set of ContentKind"
    account_type = getattr(channel, "account_type", None)
    if not (isinstance(account_type, type) and issubclass(account_type, msgspec.Struct)):
        return f"channel {name!r}: account_type must be a msgspec.Struct subclass"
    for method in ("send", "validate_account"):
        if not callable(getattr(channel, method, None)):
            return f"channel {name!r}: missing {method}()"
    return None


class Plugins:
    """Loaded plugins and the channels they provide."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("msggate")
        self.pm.add_hookspecs(hookspecs)
        self.channels: dict[str, Channel] = {}
        self.problems: list[PluginProblem] = []
        self._channel_owner: dict[str, str] = {}
        self._dists: dict[str, tuple[str | None, str | None]] = {}

    @classmethod
    def load(cls, extra: Iterable[tuple[str, object]] = (), entry_points: bool = True) -> Plugins:
        """Load every entry-point plugin (and ``extra`` (name, module) pairs, for tests)."""
        plugins = cls()
        if entry_points:
            for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                dist = ep.dist
                plugins._dists[ep.name] = (dist.name, dist.version) if dist else (None, None)
                try:
                    module = ep.load()
                except Exception as exc:  # a broken plugin must not take the gateway down
                    plugins._problem(ep.name, f"failed to import: {exc!r}")
                    continue
                plugins.register(ep.name, module)
        for name, module in extra:
            plugins.register(name, module)
        return plugins

    def _problem(self, plugin: str, reason: str) -> None:
        log.error("plugin %s disabled: %s", plugin, reason)
        self.problems.append(PluginProblem(plugin, reason))

    def register(self, name: str, module: object) -> None:
        """Register one plugin, check its hooks, and collect its channels."""
        if self.pm.has_plugin(name):
            self._problem(name, f"another plugin is already registered as {name!r}")
            return
        try:
            self.pm.register(module, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if self.pm.is_registered(module):
                self.pm.unregister(module)
            self._problem(name, f"breaks the hook contract: {exc}")
            return
        impl = next(
            (i for i in self.pm.hook.msggate_channels.get_hookimpls() if i.plugin is module), None
        )
        if impl is None:
            return
        try:
            channels = list(impl.function() or [])
        except Exception as exc:
            self.pm.unregister(module)
            self._problem(name, f"msggate_channels() raised {exc!r}")
            return
        for channel in channels:
            problem = contract_problem(channel)
            if problem:
                self._problem(name, problem)
                continue
            owner = self._channel_owner.get(channel.name)
            if owner is not None:
                raise PluginConflict(
                    f"channel {channel.name!r} is provided by both plugin {owner!r} and {name!r}"
                )
            self._channel_owner[channel.name] = name
            self.channels[channel.name] = channel

    def channel(self, name: str) -> Channel | None:
        """The channel called ``name``, or None."""
        return self.channels.get(name)

    def filter_outgoing(self, channel: str, account: str, outgoing: Outgoing) -> Failed | None:
        """The first ``Failed`` any filter returns for this delivery, or None."""
        for result in self.pm.hook.msggate_filter_outgoing(
            channel=channel, account=account, outgoing=outgoing
        ):
            if isinstance(result, Failed):
                return result
        return None

    def delivery_event(self, event: DeliveryEvent) -> None:
        """Tell observers about a committed event; their errors are logged, never raised."""
        # One call per observer, in pluggy's order: a single hook call stops at the first
        # exception, so one broken observer would hide every event from the others.
        kwargs = {"event": event}
        for impl in reversed(self.pm.hook.msggate_delivery_event.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue
            try:
                impl.function(*(kwargs[arg] for arg in impl.argnames))
            except Exception:
                log.exception("msggate_delivery_event observer %s failed", impl.plugin_name)

    def callback_routes(self) -> list[CallbackRoute]:
        """Every plugin's provider callback routes."""
        return [r for routes in self.pm.hook.msggate_callback_routes() for r in routes or ()]

    def fake_providers(self) -> list[FakeProvider]:
        """Every plugin's fake providers."""
        return [f for fakes in self.pm.hook.msggate_fake_providers() for f in fakes or ()]

    def route_address(
        self, address: str, sender: str, relay_domain: str | None, table: RoutingTable
    ) -> Route | None:
        """Where the SMTP relay sends ``address``: the first plugin's answer, or None."""
        route = self.pm.hook.msggate_route_address(
            address=address, sender=sender, relay_domain=relay_domain, table=table
        )
        if route is not None and not isinstance(route, Route):
            raise TypeError(f"msggate_route_address returned {route!r}, not a Route")
        return route

    def unregister(self, name: str) -> None:
        """Remove a plugin registered at run time (an observer tied to one gateway's services)."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin, name=name)

    def describe(self) -> list[PluginInfo]:
        """One entry per registered plugin, with its distribution, version and channels."""
        infos = []
        for name, _module in sorted(self.pm.list_name_plugin()):
            dist, version = self._dists.get(name, (None, None))
            owned = sorted(c for c, owner in self._channel_owner.items() if owner == name)
            infos.append(PluginInfo(name, dist, version, owned))
        return infos

    async def close(self) -> None:
        """Close every channel (connections, token caches)."""
        for channel in self.channels.values():
            try:
                await channel.close()
            except Exception:
                log.exception("closing channel %s failed", channel.name)
