"""The routing table: the ``[relay]`` section of the config file (``MSGGATE_CONFIG``, TOML).

::

    [relay]
    action_subdomain = "action"            # <action>@action.<relay-domain> (the default)

    [relay.sender_accounts]                # envelope sender's domain -> e-mail account
    "example.com" = "ops-mail"

    [relay.routes]                         # sub-domain of MSGGATE_RELAY_DOMAIN -> channel
    sms = { channel = "sms", account = "aliyun-sms", template = "SMS_123456" }
    wecom = { channel = "wecom", account = "wecom-app" }

Other sections belong to other parts of msggate and are ignored here. A mistake stops the start
with a ConfigError naming the file and the field.
"""

from __future__ import annotations

import logging
import re
import tomllib
from typing import Any

import msgspec

from gateway.config import ConfigError, Settings
from gateway.errors import split_validation_error
from gateway.relay.route import ChannelRoute, RoutingTable

log = logging.getLogger(__name__)

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


class RelaySection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``[relay]`` section as written in the file."""

    action_subdomain: str = "action"
    sender_accounts: dict[str, str] = {}
    routes: dict[str, ChannelRoute] = {}


def _check(section: RelaySection) -> tuple[str, str] | None:
    """(field, problem) for a value msgspec cannot check by type, or None."""
    for sub in (*section.routes, section.action_subdomain):
        if not _LABEL.match(sub):
            return f"relay.routes.{sub}", f"{sub!r} is not a lower-case sub-domain label"
    if section.action_subdomain in section.routes:
        sub = section.action_subdomain
        return f"relay.routes.{sub}", f"{sub!r} is the action sub-domain"
    for domain, account in section.sender_accounts.items():
        if not _LABEL.match(domain):
            return f"relay.sender_accounts.{domain}", f"{domain!r} is not a lower-case domain"
        if not account:
            return f"relay.sender_accounts.{domain}", "empty account name"
    for sub, route in section.routes.items():
        if not route.channel or not route.account:
            return f"relay.routes.{sub}", "channel and account must not be empty"
    return None


def _convert(value: Any, kind: type, source: str, where: str) -> Any:
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        message, field = split_validation_error(exc)
        raise ConfigError(f"{source}: {where}{f'.{field}' if field else ''}: {message}") from None


def parse_section(data: dict[str, Any], source: str) -> RelaySection:
    """The validated ``[relay]`` section of a parsed TOML document."""
    relay = _convert(data.get("relay", {}), dict[str, Any], source, "relay")
    routes = _convert(relay.get("routes", {}), dict[str, Any], source, "relay.routes")
    # one route at a time, so that a mistake is named by its sub-domain
    relay["routes"] = {
        sub: _convert(route, ChannelRoute, source, f"relay.routes.{sub}")
        for sub, route in routes.items()
    }
    section = _convert(relay, RelaySection, source, "relay")
    problem = _check(section)
    if problem:
        raise ConfigError(f"{source}: {problem[0]}: {problem[1]}")
    return section


def load_table(settings: Settings) -> RoutingTable:
    """The routing table from the settings and, if ``MSGGATE_CONFIG`` is set, its file."""
    section = RelaySection()
    if settings.config:
        source = f"MSGGATE_CONFIG ({settings.config})"
        try:
            with open(settings.config, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        section = parse_section(data, source)
    return RoutingTable(
        default_account=settings.relay_default_account,
        sender_accounts=section.sender_accounts,
        routes=section.routes,
        action_subdomain=section.action_subdomain,
    )
