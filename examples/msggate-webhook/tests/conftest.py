"""Fixtures for msggate-webhook's tests: the fake receiver on a real socket, accounts for it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from gateway.channel import AccountRef, Outgoing
from gateway.testing import serving

from msggate_webhook.account import WebhookAccount
from msggate_webhook.fake import ReceiverState, make_app

SECRET = "webhook-test-secret-0123"
TOKEN = "Bearer receiver-token-4567"


@dataclass
class Receiver:
    """A fake receiver listening on 127.0.0.1: its base URL and its state."""

    url: str
    state: ReceiverState

    def hook(self, name: str = "demo") -> str:
        return f"{self.url}/hooks/{name}"

    def config(self, **overrides: Any) -> dict[str, Any]:
        """An account config (wire form) for this receiver: signed, with its token header."""
        config: dict[str, Any] = {
            "url": self.hook(),
            "secret": SECRET,
            "headers": {"Authorization": TOKEN},
            "timeout": 5.0,
        }
        config.update(overrides)
        return config

    def account(self, name: str = "webhook-test", **overrides: Any) -> AccountRef:
        """The AccountRef the gateway would hand the channel for ``config(**overrides)``."""
        typed = msgspec.convert(self.config(**overrides), WebhookAccount)
        return AccountRef(name=name, revision=1, config=typed)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A fresh fake receiver that wants the signature and the Authorization header."""
    state = ReceiverState(secret=SECRET, required_headers={"Authorization": TOKEN})
    async with serving(make_app(state)) as url:
        yield Receiver(url, state)


def outgoing(recipient: str = "user-42", **fields: Any) -> Outgoing:
    """A delivery with fresh ids."""
    values: dict[str, Any] = {
        "delivery_id": str(uuid.uuid4()),
        "message_id": str(uuid.uuid4()),
        "recipient": recipient,
        "subject": "Deploy finished",
        "text": "build 1234 is live",
    }
    values.update(fields)
    return Outgoing(**values)
