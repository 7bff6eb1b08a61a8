"""The webhook channel passes msggate's conformance kit, against the fake receiver."""

from __future__ import annotations

import pytest
from conftest import Receiver, outgoing
from gateway.channel import AccountRef, Outgoing
from gateway.testing import ChannelConformance, OutgoingFor

from msggate_webhook.channel import WebhookChannel
from msggate_webhook.fake import Reply

# recipient -> how the fake receiver answers it
TEMPORARY = {
    "busy": Reply(status=503, body="upstream busy"),
    "throttled": Reply(status=429, retry_after="7"),
    "slow-to-read": Reply(status=408),
}
PERMANENT = {
    "gone": Reply(status=410, body='{"error": "this hook was deleted"}'),
    "unknown-user": Reply(status=400, body='{"error": "no such user"}'),
    "forbidden": Reply(status=403),
}


class TestWebhookConformance(ChannelConformance):
    channel_type = WebhookChannel
    send_timeout = 10.0

    @pytest.fixture
    def account(self, receiver: Receiver) -> AccountRef:
        return receiver.account("conformance")

    @pytest.fixture
    def bad_account(self, receiver: Receiver) -> AccountRef:
        return receiver.account("conformance-bad", secret="not-the-receivers-secret")

    @pytest.fixture
    def recipient(self) -> str:
        return "user-42"

    @pytest.fixture
    def outgoing_for(self) -> OutgoingFor:
        return outgoing

    @pytest.fixture
    def retry_outgoing(self, receiver: Receiver) -> dict[str, Outgoing]:
        receiver.state.replies.update(TEMPORARY)
        return {f"HTTP {r.status}": outgoing(name) for name, r in TEMPORARY.items()}

    @pytest.fixture
    def failed_outgoing(self, receiver: Receiver) -> dict[str, Outgoing]:
        receiver.state.replies.update(PERMANENT)
        return {f"HTTP {r.status}": outgoing(name) for name, r in PERMANENT.items()}

    @pytest.fixture
    def slow_outgoing(self, receiver: Receiver) -> Outgoing:
        receiver.state.replies["slow"] = Reply(status=200, delay=1.0)
        return outgoing("slow")

    async def test_sent_deliveries_reach_the_receiver_signed(
        self, channel: WebhookChannel, account: AccountRef, receiver: Receiver
    ) -> None:
        # the kit sees only outcomes; the fake confirms a Sent was real (and checked the signature)
        outcome = await self._send(channel, account, outgoing("user-42"))
        [received] = receiver.state.received
        assert outcome.provider_id == received.id and received.document["recipient"] == "user-42"
