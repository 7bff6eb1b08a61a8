"""The outbound channel passes the conformance kit, for both APIs, against the fake on a port."""

from __future__ import annotations

import msgspec
import pytest

from gateway.channel import AccountRef, Outgoing, Sent
from gateway.testing import ChannelConformance, OutgoingFor
from plugins.outbound.channel import OutboundChannel
from tests.outbound_fixtures import CALLEE, WRONG_SECRET, RunningOutbound, call


class TestOutboundConformance(ChannelConformance):
    channel_type = OutboundChannel
    send_timeout = 10.0
    api = "dyvms"

    @pytest.fixture
    def account(self, outbound: RunningOutbound) -> AccountRef:
        return outbound.account(api=self.api)

    @pytest.fixture
    def bad_account(self, outbound: RunningOutbound) -> AccountRef:
        return outbound.account(api=self.api, access_key_secret=WRONG_SECRET)

    @pytest.fixture
    def recipient(self) -> str:
        return CALLEE

    @pytest.fixture
    def outgoing_for(self) -> OutgoingFor:
        return call

    @pytest.fixture
    def retry_outgoing(self, outbound: RunningOutbound) -> dict[str, Outgoing]:
        faults = {
            "throttled": ("13900000101", "Throttling.User", 400),
            "per-callee limit": ("13900000102", "isv.BUSINESS_LIMIT_CONTROL", 200),
            "system error": ("13900000103", "isp.SYSTEM_ERROR", 200),
            "service unavailable": ("13900000104", "ServiceUnavailable", 503),
        }
        for number, code, status in faults.values():
            outbound.fake.fail_callee(number, code, "injected", status=status)
        return {name: call(number) for name, (number, _, _) in faults.items()}

    @pytest.fixture
    def failed_outgoing(self, outbound: RunningOutbound) -> dict[str, Outgoing]:
        outbound.fake.fail_callee("13900000201", "isv.MOBILE_NUMBER_ILLEGAL", "号码格式非法")
        outbound.fake.fail_callee("13900000202", "isv.BLACK_KEY_CONTROL_LIMIT", "黑名单管控")
        return {
            "invalid number": call("13900000201"),
            "blocked": call("13900000202"),
            "unknown script": call(template="999"),
            "no script": call(template=None),
        }

    @pytest.fixture
    def slow_outgoing(self, outbound: RunningOutbound) -> Outgoing:
        outbound.fake.fail_callee("13900000301", delay=1.0)
        return call("13900000301")

    async def test_text_over_the_size_limit_is_failed_not_truncated(
        self,
        channel: OutboundChannel,
        account: AccountRef,
        recipient: str,
        outgoing_for: OutgoingFor,
        outbound: RunningOutbound,
    ) -> None:
        """Replaces the kit's check, which skips for a channel without a text limit.

        A robot call carries no text: the script is the template and its parameters the
        variables, so there is nothing to cut short. Any text is left out of the call, whole;
        the size limit that exists (aiccs ``Params``, 512 bytes) is tested in
        test_outbound_channel.py.
        """
        outgoing = msgspec.structs.replace(outgoing_for(recipient), text="告" * 100_000)
        outcome = await self._send(channel, account, outgoing)
        assert isinstance(outcome, Sent), outcome
        [placed] = outbound.fake.calls
        assert not any("告告" in value for value in placed.params.values())

    async def test_calls_reach_the_fake(
        self, channel: OutboundChannel, account: AccountRef, outbound: RunningOutbound
    ) -> None:
        outcome = await self._send(channel, account, call())
        [placed] = outbound.fake.calls
        assert outcome.provider_id == placed.provider_id and placed.api == self.api


class TestOutboundAiccsConformance(TestOutboundConformance):
    api = "aiccs"
