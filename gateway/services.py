"""The service layer the HTTP API, the console and the CLI share."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.accounts import Accounts
from gateway.apikeys import ApiKeys
from gateway.bodies import BodyBudget
from gateway.config import Settings
from gateway.dispatcher import Dispatcher
from gateway.messages import MessageService
from gateway.plugins import Plugins
from gateway.receipts import Receipts
from gateway.relay.services import RelayServices
from gateway.store import Store


@dataclass
class Services:
    settings: Settings
    store: Store
    plugins: Plugins
    accounts: Accounts
    messages: MessageService
    api_keys: ApiKeys
    receipts: Receipts
    bodies: BodyBudget  # memory for large bodies, shared by the API and the relay
    dispatcher: Dispatcher | None = None
    relay: RelayServices | None = None  # SMTP relay, access list, relay users


SERVICES = web.AppKey("services", Services)
