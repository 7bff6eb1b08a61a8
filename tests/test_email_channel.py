"""The e-mail channel against real aiosmtpd servers: delivery, TLS, AUTH, reuse, classification."""

from __future__ import annotations

import asyncio
import datetime
import logging
import socket
from typing import Any

import msgspec
import pytest

from gateway.channel import AccountInvalid, AccountRef, Failed, Outgoing, Retry, Sent
from gateway.plugins import contract_problem
from gateway.testing import channel_fixture
from plugins.email import plugin, pool
from plugins.email.account import EmailAccount, account_from
from plugins.email.channel import EmailChannel
from tests.smtp_fixtures import SmtpTestServer

USER, PASSWORD = "alerts@example.com", "s3cret"


channel = channel_fixture(EmailChannel)


def account(server: SmtpTestServer, revision: int = 1, **overrides: Any) -> AccountRef:
    config = msgspec.convert(server.account_config(**overrides), EmailAccount)
    return AccountRef(name="ops-mail", revision=revision, config=config)


def outgoing(n: int = 1, **fields: Any) -> Outgoing:
    fields.setdefault("recipient", "user@example.com")
    fields.setdefault("subject", f"message {n}")
    if "html" not in fields:
        fields.setdefault("text", f"body {n}")
    return Outgoing(delivery_id=f"d-{n}", message_id=f"m-{n}", **fields)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- delivery ----------------------------------------------------------------------------------


async def test_plain_send_without_tls_or_auth_is_delivered_with_envelope(smtp_server, channel):
    server = smtp_server()
    outcome = await channel.send(account(server), outgoing(recipient="bob@example.com"))
    assert isinstance(outcome, Sent), outcome
    (received,) = server.wait_for(1)
    assert received.mail_from == "ops@example.com"
    assert received.rcpt_tos == ("bob@example.com",)
    assert received.message["Subject"] == "message 1"
    assert received.message.get_content().strip() == "body 1"
    assert outcome.units == 1
    assert outcome.provider_id == received.queue_id
    assert outcome.answer == f"250 2.0.0 Ok: queued as {received.queue_id}"


async def test_starttls_with_auth_trusting_account_ca_cert_delivers_as_that_user(
    smtp_server, channel
):
    server = smtp_server(tls="starttls", users={USER: PASSWORD})
    outcome = await channel.send(account(server), outgoing())
    assert isinstance(outcome, Sent), outcome
    (received,) = server.wait_for(1)
    assert received.login == USER


async def test_password_without_username_logs_in_as_the_from_address(smtp_server, channel):
    server = smtp_server(tls="starttls", users={"ops@example.com": PASSWORD})
    config = server.account_config(username=None)
    ref = AccountRef(name="ops-mail", revision=1, config=account_from(config))
    assert isinstance(await channel.send(ref, outgoing()), Sent)
    assert server.wait_for(1)[0].login == "ops@example.com"


async def test_implicit_tls_with_auth_delivers(smtp_server, channel):
    server = smtp_server(tls="tls", users={USER: PASSWORD})
    outcome = await channel.send(account(server), outgoing())
    assert isinstance(outcome, Sent), outcome
    assert server.wait_for(1)[0].login == USER


async def test_text_and_html_arrive_as_multipart_alternative(smtp_server, channel):
    server = smtp_server()
    await channel.send(account(server), outgoing(text="plain body", html="<p>rich <b>body</b></p>"))
    message = server.wait_for(1)[0].message
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_body(("plain",)).get_content().strip() == "plain body"
    assert message.get_body(("html",)).get_content().strip() == "<p>rich <b>body</b></p>"


async def test_html_only_gets_a_text_part_stripped_from_the_html(smtp_server, channel):
    server = smtp_server()
    html = "<style>p{color:red}</style><h1>Disk alert</h1><p>Usage &gt; 95%<br>on db-1</p>"
    await channel.send(account(server), outgoing(html=html))
    message = server.wait_for(1)[0].message
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.strip() == "Disk alert\n\nUsage > 95%\non db-1"
    assert message.get_body(("html",)).get_content().strip() == html


async def test_text_only_is_a_single_text_plain_part(smtp_server, channel):
    server = smtp_server()
    await channel.send(account(server), outgoing(text="just text"))
    message = server.wait_for(1)[0].message
    assert not message.is_multipart()
    assert message.get_content_type() == "text/plain"
    assert message.get_content().strip() == "just text"


async def test_chinese_subject_and_display_names_arrive_intact_and_wire_is_ascii(
    smtp_server, channel
):
    server = smtp_server()
    ref = account(server, **{"from": "运维中心 <ops@example.com>"})
    subject = "服务器告警：磁盘使用率 95%"
    await channel.send(
        ref,
        outgoing(recipient="张三 <zhangsan@example.com>", subject=subject, text="磁盘快满了"),
    )
    received = server.wait_for(1)[0]
    message = received.message
    assert message["Subject"] == subject
    assert message["From"].addresses[0].display_name == "运维中心"
    assert message["From"].addresses[0].addr_spec == "ops@example.com"
    assert message["To"].addresses[0].display_name == "张三"
    assert received.rcpt_tos == ("zhangsan@example.com",)
    assert message.get_content().strip() == "磁盘快满了"
    assert received.data.isascii()  # encoded words and base64/QP: no 8BITMIME needed


async def test_message_id_derives_from_delivery_id_and_date_is_current(smtp_server, channel):
    server = smtp_server(queue_ids=False)
    first = await channel.send(account(server), outgoing(7))
    again = await channel.send(account(server), outgoing(7))  # a retry of the same delivery
    messages = server.wait_for(2)
    assert messages[0].message["Message-ID"] == "<d-7@example.com>"
    assert messages[1].message["Message-ID"] == "<d-7@example.com>"
    assert messages[0].message["X-Msggate-Message-Id"] == "m-7"
    assert isinstance(first, Sent) and first.provider_id == "<d-7@example.com>"
    assert isinstance(again, Sent) and again.answer == "250 OK"
    sent_at = messages[0].message["Date"].datetime
    assert sent_at.tzinfo is not None
    now = datetime.datetime.now(datetime.UTC)
    assert abs((now - sent_at).total_seconds()) < 60


# --- connection reuse --------------------------------------------------------------------------


async def test_five_sends_reuse_one_connection(smtp_server, channel):
    server = smtp_server(tls="starttls", users={USER: PASSWORD})
    ref = account(server)
    for n in range(5):
        assert isinstance(await channel.send(ref, outgoing(n)), Sent)
    assert len(server.wait_for(5)) == 5
    assert server.connections == 1


async def test_after_server_drops_connection_next_send_reconnects_and_succeeds(
    smtp_server, channel
):
    server = smtp_server()
    ref = account(server)
    assert isinstance(await channel.send(ref, outgoing(1)), Sent)
    server.drop_connections()
    await asyncio.sleep(0.05)
    assert isinstance(await channel.send(ref, outgoing(2)), Sent)
    assert len(server.wait_for(2)) == 2
    assert server.connections == 2


async def test_421_before_data_is_resent_once_on_a_fresh_connection_then_retry(
    smtp_server, channel
):
    server = smtp_server(reject_from={"ops@example.com": (421, "4.3.2 Service shutting down")})
    outcome = await channel.send(account(server), outgoing())
    assert outcome == Retry(reason="4.3.2 Service shutting down", code="421")
    assert server.connections == 2


async def test_idle_connection_older_than_idle_limit_is_replaced(smtp_server, channel, monkeypatch):
    monkeypatch.setattr(pool, "IDLE_LIMIT", 0.05)
    server = smtp_server()
    ref = account(server)
    assert isinstance(await channel.send(ref, outgoing(1)), Sent)
    await asyncio.sleep(0.1)
    assert isinstance(await channel.send(ref, outgoing(2)), Sent)
    assert server.connections == 2
    await asyncio.sleep(0.05)
    assert server.open_connections == 1  # the stale one was closed, not leaked


async def test_concurrent_sends_use_at_most_max_connections(smtp_server, channel):
    server = smtp_server(delay=0.05)
    ref = account(server, max_connections=2)
    outcomes = await asyncio.gather(*(channel.send(ref, outgoing(n)) for n in range(8)))
    assert all(isinstance(o, Sent) for o in outcomes), outcomes
    assert len(server.wait_for(8)) == 8
    assert server.connections == 2


async def test_new_account_revision_uses_a_new_connection_with_new_config(smtp_server, channel):
    old_server, new_server = smtp_server(), smtp_server()
    assert isinstance(await channel.send(account(old_server, revision=1), outgoing(1)), Sent)
    assert isinstance(await channel.send(account(new_server, revision=2), outgoing(2)), Sent)
    assert len(old_server.wait_for(1)) == 1
    assert len(new_server.wait_for(1)) == 1
    await asyncio.sleep(0.1)
    assert old_server.open_connections == 0  # the old revision's pool was closed


async def test_close_quits_every_pooled_connection(smtp_server):
    server = smtp_server()
    channel = EmailChannel()
    await asyncio.gather(*(channel.send(account(server), outgoing(n)) for n in range(3)))
    assert server.open_connections >= 1
    await channel.close()
    await asyncio.sleep(0.1)
    assert server.open_connections == 0


# --- classification ----------------------------------------------------------------------------


async def test_recipient_refused_550_is_failed_with_code_and_server_text(smtp_server, channel):
    server = smtp_server(reject={"nobody@example.com": (550, "5.1.1 No such user here")})
    outcome = await channel.send(account(server), outgoing(recipient="nobody@example.com"))
    assert outcome == Failed(reason="5.1.1 No such user here", code="550")
    assert server.messages == []


async def test_recipient_451_is_retry_with_code(smtp_server, channel):
    server = smtp_server(reject={"busy@example.com": (451, "4.3.0 Try again later")})
    outcome = await channel.send(account(server), outgoing(recipient="busy@example.com"))
    assert outcome == Retry(reason="4.3.0 Try again later", code="451")


async def test_refused_recipient_leaves_connection_reusable(smtp_server, channel):
    server = smtp_server(reject={"nobody@example.com": (550, "5.1.1 No such user")})
    ref = account(server)
    assert isinstance(await channel.send(ref, outgoing(1, recipient="nobody@example.com")), Failed)
    assert isinstance(await channel.send(ref, outgoing(2)), Sent)
    assert server.connections == 1


async def test_server_down_connection_refused_is_retry(channel):
    config = EmailAccount(host="127.0.0.1", port=closed_port(), tls="none", from_="a@example.com")
    outcome = await channel.send(AccountRef("down", 1, config), outgoing())
    assert isinstance(outcome, Retry)
    assert "cannot connect to 127.0.0.1" in outcome.reason


async def test_message_larger_than_advertised_size_is_failed_552_without_sending(
    smtp_server, channel
):
    server = smtp_server(size_limit=2000)
    outcome = await channel.send(account(server), outgoing(text="x" * 5000))
    assert isinstance(outcome, Failed) and outcome.code == "552"
    assert "size limit of 2000 bytes" in outcome.reason
    assert server.messages == []


async def test_mailbox_full_552_reply_is_failed(smtp_server, channel):
    server = smtp_server(reject={"full@example.com": (552, "5.2.2 Mailbox full")})
    outcome = await channel.send(account(server), outgoing(recipient="full@example.com"))
    assert outcome == Failed(reason="5.2.2 Mailbox full", code="552")


async def test_wrong_password_is_failed_saying_wrong_password_or_authorization_code(
    smtp_server, channel
):
    server = smtp_server(tls="starttls", users={USER: PASSWORD})
    outcome = await channel.send(account(server, password="wrong"), outgoing())
    assert isinstance(outcome, Failed) and outcome.code == "535"
    assert "wrong password or authorization code" in outcome.reason
    assert "535" in outcome.reason


async def test_password_never_reaches_the_logs(smtp_server, channel, caplog):
    caplog.set_level(logging.DEBUG)
    server = smtp_server(tls="starttls", users={USER: PASSWORD})
    await channel.send(account(server), outgoing(1))
    await channel.send(account(server, revision=2, password="wrong-secret"), outgoing(2))
    with pytest.raises(AccountInvalid):
        await channel.validate_account(account(server, password="wrong-secret"))
    assert caplog.records
    assert PASSWORD not in caplog.text and "wrong-secret" not in caplog.text


async def test_timeout_waiting_for_data_reply_is_retry(smtp_server, channel):
    server = smtp_server(delay=1.0)
    outcome = await channel.send(account(server, timeout=0.3), outgoing())
    assert isinstance(outcome, Retry), outcome
    assert "timeout" in outcome.reason.lower() or "timed out" in outcome.reason.lower()


async def test_unparsable_ca_cert_is_failed_not_raised(smtp_server, channel):
    server = smtp_server(tls="starttls")
    bad_pem = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    outcome = await channel.send(account(server, ca_cert=bad_pem), outgoing())
    assert isinstance(outcome, Failed) and "invalid ca_cert" in outcome.reason


async def test_invalid_recipient_is_failed_without_connecting(smtp_server, channel):
    server = smtp_server()
    outcome = await channel.send(account(server), outgoing(recipient="not an address"))
    assert isinstance(outcome, Failed) and "invalid recipient" in outcome.reason
    assert server.connections == 0


# --- validate_account --------------------------------------------------------------------------


async def test_validate_good_credentials_passes_and_sends_no_mail(smtp_server, channel):
    server = smtp_server(tls="starttls", users={USER: PASSWORD})
    await channel.validate_account(account(server))
    assert server.connections == 1
    assert server.messages == []


async def test_validate_implicit_tls_account_passes(smtp_server, channel):
    server = smtp_server(tls="tls", users={USER: PASSWORD})
    await channel.validate_account(account(server))


async def test_validate_wrong_password_raises_with_servers_reason(smtp_server, channel):
    server = smtp_server(tls="starttls", users={USER: PASSWORD})
    with pytest.raises(AccountInvalid) as info:
        await channel.validate_account(account(server, password="wrong"))
    assert info.value.field == "password"
    assert "wrong password or authorization code" in info.value.reason
    assert "535 5.7.8 Authentication credentials invalid" in info.value.reason


async def test_validate_unreachable_host_says_cannot_connect_to_host_port(channel):
    port = closed_port()
    config = EmailAccount(host="127.0.0.1", port=port, tls="none", from_="a@example.com")
    with pytest.raises(AccountInvalid) as info:
        await channel.validate_account(AccountRef("down", 1, config))
    assert info.value.reason.startswith(f"cannot connect to 127.0.0.1:{port}")
    assert info.value.field == "host"


async def test_validate_starttls_required_but_not_offered_is_invalid(smtp_server, channel):
    server = smtp_server(tls="none")
    with pytest.raises(AccountInvalid) as info:
        await channel.validate_account(account(server, tls="starttls"))
    assert "server does not offer STARTTLS" in info.value.reason
    assert info.value.field == "tls"


@pytest.mark.parametrize("tls", ["starttls", "tls"])
async def test_validate_untrusted_certificate_is_invalid_about_tls(smtp_server, channel, tls):
    server = smtp_server(tls=tls)
    with pytest.raises(AccountInvalid) as info:
        await channel.validate_account(account(server, ca_cert=None))
    assert "TLS handshake failed / certificate not trusted" in info.value.reason
    assert "CERTIFICATE_VERIFY_FAILED" in info.value.reason
    assert info.value.field == "tls"


async def test_validate_with_verify_tls_off_accepts_untrusted_certificate(smtp_server, channel):
    server = smtp_server(tls="starttls")
    await channel.validate_account(account(server, ca_cert=None, verify_tls=False))


async def test_validate_sender_refused_names_the_from_field(smtp_server, channel):
    server = smtp_server(reject_from={"ops@example.com": (553, "5.7.1 Sender not owned by user")})
    with pytest.raises(AccountInvalid) as info:
        await channel.validate_account(account(server))
    assert info.value.reason == "sender address refused: 553 5.7.1 Sender not owned by user"
    assert info.value.field == "from"


async def test_validate_without_credentials_on_auth_server_says_auth_required(smtp_server, channel):
    server = smtp_server(tls="starttls", users={USER: PASSWORD})
    with pytest.raises(AccountInvalid) as info:
        await channel.validate_account(account(server, username=None, password=None))
    assert "server requires authentication" in info.value.reason


async def test_validate_auth_not_offered_is_invalid(smtp_server, channel):
    server = smtp_server(tls="starttls", users={USER: PASSWORD}, advertise_auth=False)
    with pytest.raises(AccountInvalid) as info:
        await channel.validate_account(account(server))
    assert "server does not offer AUTH" in info.value.reason


# --- account config and plugin -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"host": "h", "port": 587, "from": "Ops <not-an-address>"}, "from"),
        ({"host": "h", "port": 70000, "from": "a@example.com"}, "port"),
        ({"host": "h", "port": 587, "from": "a@example.com", "username": "u"}, "password"),
        ({"host": "h", "port": 25, "tls": "none", "from": "a@example.com", "password": "p"}, "tls"),
        ({"host": "h", "port": 465, "tls": "starttls", "from": "a@example.com"}, "tls"),
    ],
)
def test_malformed_account_config_is_invalid_naming_the_field(config, field):
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(config, EmailAccount)
    with pytest.raises(AccountInvalid) as info:
        account_from(config)
    assert info.value.field == field


def test_account_accepts_chinese_display_name_and_hides_password_in_repr():
    config = account_from(
        {"host": "smtp.qq.com", "port": 465, "tls": "tls", "from": "运维中心 <ops@example.com>"}
        | {"password": "auth-code-123"}
    )
    assert config.sender.display_name == "运维中心"
    assert "auth-code-123" not in repr(config)
    assert EmailAccount.secret_fields == frozenset({"password"})


def test_plugin_hook_provides_an_email_channel_meeting_the_contract():
    (channel,) = plugin.msggate_channels()
    assert isinstance(channel, EmailChannel) and channel.name == "email"
    assert contract_problem(channel) is None
