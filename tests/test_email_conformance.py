"""The built-in e-mail channel passes the conformance kit third-party channels are held to.

The provider is a real aiosmtpd server (``tests.smtp_fixtures``) with STARTTLS and AUTH, so
refused credentials are a real ``535`` and secrets travel a real TLS session. The server refuses
some recipients at RCPT (4yz: try again, 5yz: never) and, for the cancellation test, answers
DATA after a second.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from gateway.channel import AccountRef, Outgoing
from gateway.testing import ChannelConformance, OutgoingFor
from plugins.email.account import EmailAccount
from plugins.email.channel import EmailChannel
from tests.smtp_fixtures import SmtpTestServer

LOGIN = "ops@example.com"
PASSWORD = "conformance-s3cret-password"
WRONG_PASSWORD = "conformance-wrong-password"

# recipient -> the server's answer at RCPT
REFUSED = {
    "busy@example.com": (450, "4.2.1 Mailbox busy, try again later"),
    "greylisted@example.com": (451, "4.7.1 Greylisted, please try again"),
    "nobody@example.com": (550, "5.1.1 No such user here"),
    "spam@example.com": (554, "5.7.1 Message refused"),
}


def _ref(server: SmtpTestServer, name: str, **overrides: object) -> AccountRef:
    config = msgspec.convert(server.account_config(**overrides), EmailAccount)
    return AccountRef(name=name, revision=1, config=config)


class TestEmailConformance(ChannelConformance):
    channel_type = EmailChannel
    send_timeout = 20.0

    @pytest.fixture
    def server(self, smtp_server: Callable[..., SmtpTestServer]) -> SmtpTestServer:
        return smtp_server(tls="starttls", users={LOGIN: PASSWORD}, reject=REFUSED)

    @pytest.fixture
    def account(self, server: SmtpTestServer) -> AccountRef:
        return _ref(server, "conformance")

    @pytest.fixture
    def bad_account(self, server: SmtpTestServer) -> AccountRef:
        return _ref(server, "conformance-bad", password=WRONG_PASSWORD)

    @pytest.fixture
    def recipient(self) -> str:
        return "someone@example.com"

    @pytest.fixture
    def retry_outgoing(self, outgoing_for: OutgoingFor) -> dict[str, Outgoing]:
        return {r: outgoing_for(r) for r, (code, _) in REFUSED.items() if code < 500}

    @pytest.fixture
    def failed_outgoing(self, outgoing_for: OutgoingFor) -> dict[str, Outgoing]:
        return {r: outgoing_for(r) for r, (code, _) in REFUSED.items() if code >= 500}

    @pytest.fixture
    def slow_outgoing(self, server: SmtpTestServer, outgoing_for: OutgoingFor) -> Outgoing:
        server.delay = 1.0  # every DATA answer from now on, so the kit's sends take a second
        return outgoing_for("someone@example.com")

    async def test_sent_mail_reaches_the_server(
        self,
        channel: EmailChannel,
        account: AccountRef,
        server: SmtpTestServer,
        recipient: str,
        outgoing_for: OutgoingFor,
    ) -> None:
        # the kit sees only outcomes; here the fake provider confirms a Sent was real
        await self._send(channel, account, outgoing_for(recipient))
        (received,) = await server.await_messages(1)
        assert received.rcpt_tos == (recipient,) and received.login == LOGIN
