"""What an RCPT address means: the routes the ``msggate_route_address`` hook returns.

Plugin authors import these. ``Deliver`` sends through a channel and account to the channel's
own recipient (an e-mail address, a phone number, a WeCom user id); ``Action`` triggers a tiered
push action; ``Unroutable`` refuses the address with a reason the SMTP client sees (550 5.1.1).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

log = logging.getLogger(__name__)


class Deliver(msgspec.Struct, frozen=True, kw_only=True, tag="deliver"):
    """Send to ``recipient`` through ``channel`` with sender ``account`` (names, as in the API).

    ``template`` and ``options`` are passed on as the message's ``template`` and ``options``
    (for channels that send templates, the subject and body come as the variables ``subject``
    and ``body``).
    """

    channel: str
    account: str
    recipient: str
    template: str | None = None
    options: dict[str, Any] = {}


class Action(msgspec.Struct, frozen=True, kw_only=True, tag="action"):
    """Trigger the tiered push action ``name``, with the subject and body as its variables."""

    name: str


class Unroutable(msgspec.Struct, frozen=True, kw_only=True, tag="unroutable"):
    """Refuse the address: ``reason`` goes back to the SMTP client with 550 5.1.1."""

    reason: str


Route = Deliver | Action | Unroutable


class ChannelRoute(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One row of the routing table: a sub-domain's channel and sender account."""

    channel: str
    account: str
    template: str | None = None
    options: dict[str, Any] = {}


class RoutingTable(msgspec.Struct, frozen=True, kw_only=True):
    """The relay's routing settings, as the ``msggate_route_address`` hook receives them.

    - ``default_account``: the e-mail account for ordinary addresses
      (``MSGGATE_RELAY_DEFAULT_ACCOUNT``);
    - ``sender_accounts``: e-mail account by the envelope sender's domain (wins over the default);
    - ``routes``: sub-domain of the relay domain -> channel and account
      (``sms`` routes ``13800138000@sms.<relay-domain>``);
    - ``action_subdomain``: the sub-domain whose addresses name tiered actions.
    """

    default_account: str | None = None
    sender_accounts: dict[str, str] = {}
    routes: dict[str, ChannelRoute] = {}
    action_subdomain: str = "action"
