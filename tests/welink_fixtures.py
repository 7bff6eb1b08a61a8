"""Fixtures for the WeLink tests: the fake WeLink API on a real port, accounts pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.channel import AccountRef, Outgoing
from gateway.testing import channel_fixture, outgoing, serving
from plugins.welink.account import WeLinkAccount
from plugins.welink.channel import WeLinkChannel
from plugins.welink.fake import WeLinkFake, make_app

CLIENT_ID = "20190828163922073733756"
CLIENT_SECRET = "7c4f1e6e-f2db-42bd-a2c1-b2905c1c2a5b"
WRONG_SECRET = "00000000-wrong-secret-0000"


@dataclass
class RunningWeLink:
    fake: WeLinkFake
    url: str

    def account(self, revision: int = 1, **overrides: Any) -> AccountRef:
        config: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "endpoint": self.url,
        }
        config.update(overrides)
        return AccountRef(name="welink-test", revision=revision, config=WeLinkAccount(**config))


@pytest.fixture
def welink_fake() -> WeLinkFake:
    """The fake's state; tests may reconfigure it before the first request."""
    fake = WeLinkFake()
    fake.add_app(CLIENT_ID, CLIENT_SECRET)
    return fake


@pytest.fixture
async def welink(welink_fake: WeLinkFake) -> AsyncIterator[RunningWeLink]:
    async with serving(make_app(welink_fake)) as url:
        yield RunningWeLink(welink_fake, url)


welink_channel = channel_fixture(WeLinkChannel, "welink_channel")


def card(recipient: str = "john@welink", **fields: Any) -> Outgoing:
    fields.setdefault("subject", "Disk alert")
    fields.setdefault("text", "db-1 disk at 95%")
    return outgoing(recipient, **fields)
