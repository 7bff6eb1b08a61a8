"""The sidebar: the manual's menu, with the screens of later issues shown as "coming"."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from admin.routing import ADMIN, ANY, OPERATOR, allowed
from gateway.console_store import SessionRow


@dataclass(frozen=True)
class Item:
    key: str  # catalogue key of its label
    route: str | None = None  # None: coming in a later release
    role: str = ANY  # least role that sees it


@dataclass(frozen=True)
class Group:
    key: str
    icon: str
    items: tuple[Item, ...] = ()
    route: str | None = None  # a group that is itself a screen
    coming: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


MENU: tuple[Group, ...] = (
    Group("menu.home", "home", route="home.index"),
    Group("menu.push", "send", coming=True),
    Group(
        "menu.tiered",
        "layers",
        (Item("menu.tiered_templates"), Item("menu.tiered_actions")),
        coming=True,
    ),
    Group("menu.outbound_tasks", "phone", coming=True),
    Group(
        "menu.messages",
        "inbox",
        (
            Item("menu.message_log", "messages.list"),
            Item("menu.sandbox", "sandbox.list"),
            Item("menu.send_test", "send.form", OPERATOR),
        ),
    ),
    Group(
        "menu.settings",
        "settings",
        (
            Item("menu.accounts", "accounts.list"),
            Item("menu.access", "access.list"),
            Item("menu.outbound_accounts", "outbound.list"),
            Item("menu.apikeys", "apikeys.list"),
            Item("menu.relay_users", "relay_users.list"),
            Item("menu.console_users", "users.list", ADMIN),
        ),
    ),
    Group(
        "menu.costs",
        "wallet",
        (
            Item("menu.cost_overview"),
            Item("menu.cost_bills"),
            Item("menu.cost_details"),
            Item("menu.cost_transactions"),
        ),
        coming=True,
    ),
)


def _section(route_name: str | None) -> str:
    return (route_name or "").split(".", 1)[0]


def build_menu(request: web.Request, session: SessionRow | None) -> list[dict[str, Any]]:
    """The menu for this user, with the current screen's entry marked active."""
    if session is None:
        return []
    role = session.user.role
    route = request.match_info.route
    current = _section(getattr(route, "name", None))
    groups = []
    for group in MENU:
        items = []
        for item in group.items:
            if item.route is not None and not allowed(role, item.role):
                continue
            items.append(
                {
                    "key": item.key,
                    "route": item.route,
                    "coming": group.coming or item.route is None,
                    "active": item.route is not None and _section(item.route) == current,
                }
            )
        if group.items and not items:
            continue
        groups.append(
            {
                "key": group.key,
                "icon": group.icon,
                "route": group.route,
                "coming": group.coming,
                "items": items,
                "active": (group.route is not None and _section(group.route) == current)
                or any(i["active"] for i in items),
            }
        )
    return groups
