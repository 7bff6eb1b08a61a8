"""The SMTP relay over real SMTP: STARTTLS, AUTH, never an open relay, limits, message history."""

from __future__ import annotations

import asyncio
import base64
import smtplib
import ssl
from dataclasses import replace

import aiosmtplib
import pytest

from tests.gateway_fixtures import unique
from tests.relay_support import (
    PASSWORD,
    message_ids,
    smtplib_send_async,
    start_relay,
)

MESSAGE = (
    "From: Legacy App <legacy-app@example.com>\r\n"
    "To: ops@example.com\r\n"
    "Subject: disk alert\r\n"
    "Message-ID: <{mid}@legacy.example.com>\r\n"
    "\r\n"
    "disk 95% full\r\n"
)


def message(mid: str | None = None) -> bytes:
    return MESSAGE.format(mid=mid or unique("m")).encode()


@pytest.fixture
async def relay(make_gateway, tmp_path):
    return await start_relay(make_gateway, tmp_path)


async def test_starttls_auth_plain_relays_and_history_shows_smtp_ingress(relay):
    user = await relay.user()
    mid = unique("m")
    async with relay.session() as smtp:
        assert smtp.get_transport_info("sslcontext") is not None  # STARTTLS done
        assert "starttls" not in smtp.esmtp_extensions
        assert {"PLAIN", "LOGIN"} <= set(smtp.esmtp_extensions["auth"].upper().split())
        await smtp.auth_plain(user, PASSWORD)
        await smtp.mail("legacy-app@example.com")
        await smtp.rcpt("ops@example.com")
        reply = await smtp.data(message(mid))
    assert reply.code == 250 and reply.message.startswith("2.0.0 Ok: queued as")
    [message_id] = message_ids(reply.message)
    status, detail = await relay.gw.get(f"/api/v1/messages/{message_id}")
    assert status == 200, detail
    assert detail["ingress"] == "smtp"
    ingress = detail["ingress_detail"]
    assert ingress["client"] == "127.0.0.1"
    assert ingress["auth_user"] == user
    assert ingress["mail_from"] == "legacy-app@example.com"
    assert ingress["message_id"] == f"<{mid}@legacy.example.com>"
    assert ingress["helo"] and ingress["tls"].startswith("TLS")
    assert detail["subject"] == "disk alert" and detail["text"] == "disk 95% full\n"
    done = await relay.gw.wait_done(message_id)
    assert [d["status"] for d in done["deliveries"]] == ["sent"]


async def test_auth_login_with_smtplib_is_accepted(relay):
    user = await relay.user()
    refused = await smtplib_send_async(relay, user, ["ops@example.com"], message())
    assert refused == {}


async def test_wrong_password_is_535_and_the_message_is_refused_at_rcpt(relay):
    user = await relay.user()
    async with relay.session() as smtp:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
            await smtp.auth_plain(user, "wrong password!!")
        assert info.value.code == 535
        await smtp.mail("legacy-app@example.com")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as refused:
            await smtp.rcpt("ops@example.com")
        assert refused.value.code == 530 and "5.7.0" in refused.value.message


async def test_unknown_user_is_535_like_a_wrong_password(relay):
    async with relay.session() as smtp:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
            await smtp.auth_login("nobody@example.com", PASSWORD)
        assert info.value.code == 535


async def test_unauthenticated_client_cannot_relay_anywhere(relay):
    # no AUTH, empty access list: an open relay would take this
    async with relay.session() as smtp:
        await smtp.mail("spammer@example.net")
        for rcpt in (
            "victim@example.org",
            f"13800138000@sms.{relay.gw.services.settings.relay_domain}",
        ):
            with pytest.raises(aiosmtplib.SMTPRecipientRefused) as info:
                await smtp.rcpt(rcpt)
            assert info.value.code == 530
        with pytest.raises(aiosmtplib.SMTPResponseException) as data:
            await smtp.data(message())
        assert data.value.code == 503  # no recipient was accepted: nothing to send


async def test_smtplib_without_auth_is_refused_with_530(relay):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
        await smtplib_send_async(relay, None, ["victim@example.org"], message())
    [(code, text)] = info.value.recipients.values()
    assert code == 530 and b"5.7.0" in text


async def test_auth_is_not_offered_or_accepted_before_starttls(relay):
    user = await relay.user()
    async with relay.session(tls=False) as smtp:
        assert "auth" not in smtp.esmtp_extensions
        assert "starttls" in smtp.esmtp_extensions
        credentials = base64.b64encode(f"\0{user}\0{PASSWORD}".encode()).decode()
        reply = await smtp.execute_command(b"AUTH", b"PLAIN", credentials.encode())
        assert reply.code == 538 and "STARTTLS" in reply.message


async def test_plain_auth_allowed_without_tls_only_when_configured(make_gateway, tmp_path):
    relay = await start_relay(make_gateway, tmp_path, smtp_allow_plain_auth=True)
    user = await relay.user()
    async with relay.session(tls=False) as smtp:
        assert "auth" in smtp.esmtp_extensions
        await smtp.login(user, PASSWORD)
        await smtp.mail("legacy-app@example.com")
        await smtp.rcpt("ops@example.com")
        assert (await smtp.data(message())).code == 250


async def test_repeated_failures_are_answered_slower_then_refused_unchecked_with_454(relay):
    throttle = relay.gw.services.relay.throttle
    throttle.limits = replace(throttle.limits, base_delay=0.2, max_delay=0.4)
    user = await relay.user()
    delays = []
    for _ in range(3):  # a session is closed after 3 failures: use sessions of 2
        async with relay.session() as smtp:
            for _ in range(2):
                if len(delays) == throttle.limits.per_user_address:
                    break
                started = asyncio.get_running_loop().time()
                with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
                    await smtp.auth_plain(user, "not the password")
                assert info.value.code == 535
                delays.append(asyncio.get_running_loop().time() - started)
    assert delays[0] >= 0.2 and min(delays[1:]) >= 0.4
    async with relay.session() as smtp:  # over budget: even the right password is not checked
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
            await smtp.auth_plain(user, PASSWORD)
        assert info.value.code == 454 and "4.7.0" in info.value.message
        assert "for this user from this address" in info.value.message


async def test_third_failure_in_one_session_closes_it_with_421(relay):
    throttle = relay.gw.services.relay.throttle
    throttle.limits = replace(throttle.limits, base_delay=0.01)
    user = await relay.user()
    async with relay.session() as smtp:
        for _ in range(2):
            with pytest.raises(aiosmtplib.SMTPAuthenticationError):
                await smtp.auth_plain(user, "wrong")
        with pytest.raises(aiosmtplib.SMTPResponseException) as info:
            await smtp.auth_plain(user, "wrong")
        assert info.value.code == 421


async def test_size_is_advertised_and_enforced_with_552(make_gateway, tmp_path):
    relay = await start_relay(make_gateway, tmp_path, smtp_max_message_size=20_000)
    user = await relay.user()
    async with relay.session() as smtp:
        assert smtp.esmtp_extensions["size"] == "20000"
        await smtp.login(user, PASSWORD)
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as declared:
            await smtp.mail("legacy-app@example.com", options=["SIZE=50000"])
        assert declared.value.code == 552 and "5.3.4" in declared.value.message
        await smtp.mail("legacy-app@example.com")  # no SIZE given: counted while it comes
        await smtp.rcpt("ops@example.com")
        big = message() + b"x" * 70 + b"\r\n"
        big += (b"y" * 70 + b"\r\n") * 400
        with pytest.raises(aiosmtplib.SMTPDataError) as sent:
            await smtp.data(big)
        assert sent.value.code == 552 and "5.3.4" in sent.value.message


async def test_recipient_limit_is_452_for_the_one_too_many(make_gateway, tmp_path):
    relay = await start_relay(make_gateway, tmp_path, smtp_max_recipients=3)
    user = await relay.user()
    async with relay.session() as smtp:
        await smtp.login(user, PASSWORD)
        await smtp.mail("legacy-app@example.com")
        for n in range(3):
            await smtp.rcpt(f"r{n}@example.com")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as info:
            await smtp.rcpt("r3@example.com")
        assert info.value.code == 452 and "4.5.3" in info.value.message
        reply = await smtp.data(message())
    [message_id] = message_ids(reply.message)
    _, detail = await relay.gw.get(f"/api/v1/messages/{message_id}")
    assert sorted(d["recipient"] for d in detail["deliveries"]) == [
        "r0@example.com",
        "r1@example.com",
        "r2@example.com",
    ]


async def test_overlong_line_is_refused_with_500_5_5_2(relay):
    user = await relay.user()
    async with relay.session() as smtp:
        await smtp.login(user, PASSWORD)
        await smtp.mail("legacy-app@example.com")
        await smtp.rcpt("ops@example.com")
        with pytest.raises(aiosmtplib.SMTPDataError) as info:
            await smtp.data(message() + b"z" * 1200 + b"\r\n")
        assert info.value.code == 500 and "5.5.2" in info.value.message
        # the session goes on: the next message is fine
        await smtp.mail("legacy-app@example.com")
        await smtp.rcpt("ops@example.com")
        assert (await smtp.data(message())).code == 250


async def test_8bitmime_and_smtputf8_are_advertised_and_utf8_mail_is_taken(relay):
    user = await relay.user()
    raw = (
        "From: 监控 <legacy-app@example.com>\r\nTo: ops@example.com\r\n"
        "Subject: 磁盘告警\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "使用率 95%\r\n"
    ).encode()
    async with relay.session() as smtp:
        assert "8bitmime" in smtp.esmtp_extensions and "smtputf8" in smtp.esmtp_extensions
        await smtp.login(user, PASSWORD)
        await smtp.mail("legacy-app@example.com", options=["BODY=8BITMIME", "SMTPUTF8"])
        await smtp.rcpt("ops@example.com")
        reply = await smtp.data(raw)
    [message_id] = message_ids(reply.message)
    _, detail = await relay.gw.get(f"/api/v1/messages/{message_id}")
    assert detail["subject"] == "磁盘告警" and detail["text"] == "使用率 95%\n"


async def test_idle_client_is_disconnected_after_the_command_timeout(make_gateway, tmp_path):
    relay = await start_relay(make_gateway, tmp_path, smtp_command_timeout=0.5)
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    try:
        assert (await reader.readline()).startswith(b"220 ")
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    finally:
        writer.close()


async def test_a_client_resending_the_same_message_id_gets_the_same_message(relay):
    user = await relay.user()
    mid = unique("m")
    first = await relay.send(message(mid), ["ops@example.com"], user=user)
    again = await relay.send(message(mid), ["ops@example.com"], user=user)
    assert first[0] == again[0] == 250
    assert message_ids(first[1]) == message_ids(again[1])


async def test_self_signed_certificate_is_generated_once_and_says_so(make_gateway, caplog):
    gw = await make_gateway()
    relay = gw.services.relay
    folder = gw.services.settings.data_path / "smtp-tls"
    assert (folder / "cert.pem").exists() and (folder / "key.pem").stat().st_mode & 0o077 == 0
    assert "self-signed" in caplog.text
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    smtp = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=relay.listener.port, tls_context=context, timeout=10
    )
    async with smtp:
        assert smtp.get_transport_info("sslcontext") is not None


async def test_misspelt_handler_hook_fails_loudly():
    from gateway.relay.handler import check_hooks

    class Handler:
        async def handle_RCTP(self, *args):  # would be silently ignored by aiosmtpd
            return "250 OK"

    with pytest.raises(TypeError, match="handle_RCTP"):
        check_hooks(Handler())


async def test_connections_over_the_limit_get_421(make_gateway, tmp_path):
    relay = await start_relay(make_gateway, tmp_path, smtp_max_connections=1)
    first = await asyncio.open_connection("127.0.0.1", relay.port)
    try:
        assert (await first[0].readline()).startswith(b"220 ")
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        assert (await reader.readline()).startswith(b"421 4.7.0")
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        first[1].close()


async def test_a_client_stalling_inside_data_is_cut_off_after_the_data_timeout(
    make_database, make_gateway, tmp_path
):
    database = await make_database()  # its own: an access rule applies to every gateway on it
    relay = await start_relay(make_gateway, tmp_path, smtp_data_timeout=0.5, database_url=database)
    status, _ = await relay.gw.post("/api/v1/access-rules", {"name": "me", "cidr": "127.0.0.1"})
    assert status == 201
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
    try:
        await reader.readline()
        for command in (b"HELO legacy", b"MAIL FROM:<app@example.com>", b"RCPT TO:<a@example.com>"):
            writer.write(command + b"\r\n")
            assert (await reader.readline()).startswith(b"250")
        writer.write(b"DATA\r\n")
        assert (await reader.readline()).startswith(b"354")
        writer.write(b"Subject: half a message\r\n")  # ... and nothing more
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert asyncio.get_running_loop().time() - started < 3
    finally:
        writer.close()
