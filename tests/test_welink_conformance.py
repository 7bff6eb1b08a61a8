"""The WeLink channel passes the conformance kit, against the fake WeLink API on a real port."""

from __future__ import annotations

import pytest

from gateway.channel import AccountRef, Outgoing
from gateway.testing import ChannelConformance, OutgoingFor
from plugins.welink.channel import WeLinkChannel
from tests.welink_fixtures import CLIENT_SECRET, WRONG_SECRET, RunningWeLink, card


class TestWeLinkConformance(ChannelConformance):
    channel_type = WeLinkChannel
    send_timeout = 10.0

    @pytest.fixture
    def account(self, welink: RunningWeLink) -> AccountRef:
        return welink.account()

    @pytest.fixture
    def bad_account(self, welink: RunningWeLink) -> AccountRef:
        return welink.account(client_secret=WRONG_SECRET)

    @pytest.fixture
    def recipient(self) -> str:
        return "john@welink"

    @pytest.fixture
    def outgoing_for(self) -> OutgoingFor:
        return card

    @pytest.fixture
    def retry_outgoing(self, welink: RunningWeLink) -> dict[str, Outgoing]:
        faults = {
            "rate limited": ("48503", "frequency over limit: 40 per second"),
            "system error": ("43999", "system error"),
            "push failed": ("51002", "push failed"),
        }
        cases = {}
        for name, (code, message) in faults.items():
            user = f"{code}@welink"
            welink.fake.fail_user(user, code, message)
            cases[name] = card(user)
        return cases

    @pytest.fixture
    def failed_outgoing(self, welink: RunningWeLink) -> dict[str, Outgoing]:
        faults = {
            "not a follower": ("51019", "不能给非粉丝用户推送消息"),
            "parameter error": ("47003", "parameter error"),
        }
        cases = {}
        for name, (code, message) in faults.items():
            user = f"{code}@welink"
            welink.fake.fail_user(user, code, message)
            cases[name] = card(user)
        cases["text over 512 bytes"] = card(text="告" * 171)
        return cases

    @pytest.fixture
    def slow_outgoing(self, welink: RunningWeLink) -> Outgoing:
        welink.fake.fail_user("slow@welink", delay=1.0)
        return card("slow@welink")

    async def test_sent_cards_reach_the_fake(
        self, channel: WeLinkChannel, account: AccountRef, welink: RunningWeLink
    ) -> None:
        # the kit sees only outcomes; here the fake confirms a Sent was real
        outcome = await self._send(channel, account, card("john@welink"))
        [received] = welink.fake.cards
        assert outcome.provider_id == received.item_id
        assert CLIENT_SECRET not in repr(account)
