"""The built-in routing of relay addresses, an ordinary plugin (entry point ``relay_routing``).

- ``<recipient>@<sub-domain>.<relay-domain>``: the routing table's channel and account for that
  sub-domain (``13800138000@sms.relay.example.com`` -> channel ``sms``, recipient
  ``13800138000``); the action sub-domain names a tiered action.
- any other address: e-mail, through the account for the sender's domain, else the default.

It runs last (``trylast``), so a third-party plugin can claim any address first.
"""

from __future__ import annotations

import logging

from gateway import hookimpl
from gateway.relay.route import Action, Deliver, Route, RoutingTable, Unroutable

log = logging.getLogger(__name__)

EMAIL = "email"


def _domain(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local, domain.lower().rstrip(".")


def _relay_route(local: str, sub: str, relay_domain: str, table: RoutingTable) -> Route:
    if sub == table.action_subdomain:
        return Action(name=local)
    route = table.routes.get(sub)
    if route is None:
        known = ", ".join(sorted(table.routes)) or "none configured"
        return Unroutable(
            reason=f"sub-domain {sub!r} of {relay_domain} is not in the routing table"
            f" (routed sub-domains: {known})"
        )
    return Deliver(
        channel=route.channel,
        account=route.account,
        recipient=local,
        template=route.template,
        options=route.options,
    )


@hookimpl(trylast=True)
def msggate_route_address(
    address: str, sender: str, relay_domain: str | None, table: RoutingTable
) -> Route | None:
    """Relay sub-domains by the routing table; everything else as e-mail."""
    local, domain = _domain(address)
    if not local or not domain:
        return Unroutable(reason="not an address of the form user@domain")
    if relay_domain:
        if domain == relay_domain:
            return Unroutable(
                reason=f"{relay_domain} itself has no mailboxes; address channels as"
                f" <recipient>@<channel sub-domain>.{relay_domain}"
            )
        if domain.endswith("." + relay_domain):
            return _relay_route(local, domain[: -len(relay_domain) - 1], relay_domain, table)
    _, sender_domain = _domain(sender)
    account = table.sender_accounts.get(sender_domain) or table.default_account
    if account is None:
        return Unroutable(
            reason="no e-mail account to relay through: set MSGGATE_RELAY_DEFAULT_ACCOUNT"
            " or an account for the sender's domain in the routing table"
        )
    return Deliver(channel=EMAIL, account=account, recipient=address)
