"""Bounces: an RFC 3464 report to the envelope sender for a permanent failure; never to <>."""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy

import pytest

from gateway.relay import bounces
from tests.gateway_fixtures import unique
from tests.relay_support import message_ids, start_relay

GONE = "gone@example.com"


def mail(subject: str, mid: str) -> bytes:
    return (
        f"From: App <app@example.com>\r\nTo: {GONE}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{mid}@example.com>\r\n\r\nhello\r\n"
    ).encode()


async def bouncing_relay(make_gateway, tmp_path, smtp_server, **settings):
    """A relay whose default account submits to a server that refuses GONE permanently."""
    downstream = smtp_server(reject={GONE: (550, "5.1.1 mailbox unavailable")})
    account = unique("mail")
    relay = await start_relay(make_gateway, tmp_path, account=account, **settings)
    status, body = await relay.gw.post(
        "/api/v1/accounts",
        {"channel": "email", "name": account, "config": downstream.account_config()},
    )
    assert status == 201, body
    return relay, downstream


async def send_failing(relay, sender: str) -> tuple[str, str]:
    user = await relay.user()
    mid = unique("m")
    code, reply = await relay.send(mail("quarterly numbers", mid), [GONE], user=user, sender=sender)
    assert code == 250, reply
    [message_id] = message_ids(reply)
    done = await relay.gw.wait_done(message_id)
    assert done["deliveries"][0]["status"] == "failed"
    return message_id, mid


async def bounces_for(db, message_id: str) -> list:
    return await db.fetch(
        "SELECT id, ingress, subject FROM messages WHERE ingress = 'relay-bounce'"
        " AND ingress_detail->>'bounce_for' = $1",
        message_id,
    )


async def test_permanent_failure_sends_a_delivery_status_notification(
    make_gateway, tmp_path, smtp_server, db
):
    relay, downstream = await bouncing_relay(make_gateway, tmp_path, smtp_server)
    message_id, mid = await send_failing(relay, "app@example.com")
    [dsn] = await downstream.await_messages(1, timeout=20)
    assert dsn.rcpt_tos == ("app@example.com",)
    report = message_from_bytes(dsn.data, policy=policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["Auto-Submitted"] == "auto-replied"
    assert "quarterly numbers" in report["Subject"]
    human, status, headers = report.iter_parts()
    assert GONE in human.get_content() and "mailbox unavailable" in human.get_content()
    assert status.get_content_type() == "message/delivery-status"
    fields = status.as_string()
    assert f"Final-Recipient: rfc822;{GONE}" in fields
    assert "Action: failed" in fields and "Status: 5.1.1" in fields
    assert "Diagnostic-Code: smtp; 550 5.1.1 mailbox unavailable" in fields
    assert headers.get_content_type() == "text/rfc822-headers"
    assert f"<{mid}@example.com>" in headers.as_string()
    [row] = await bounces_for(db, message_id)
    await relay.gw.wait_done(str(row["id"]))
    await asyncio.sleep(0.3)
    assert len(downstream.messages) == 1  # a bounce is sent once


async def test_no_bounce_to_the_null_sender(make_gateway, tmp_path, smtp_server, db, monkeypatch):
    relay, downstream = await bouncing_relay(make_gateway, tmp_path, smtp_server)
    message_id, _ = await send_failing(relay, "")  # MAIL FROM:<>
    _, detail = await relay.gw.get(f"/api/v1/messages/{message_id}")
    assert detail["ingress_detail"]["mail_from"] == ""
    monkeypatch.setattr(bounces, "SWEEP_GRACE", 0.0)
    await relay.gw.services.relay.bounces.sweep()  # the sweep leaves it alone too
    await asyncio.sleep(0.5)
    assert downstream.messages == []
    assert await bounces_for(db, message_id) == []


async def test_bounces_can_be_turned_off(make_gateway, tmp_path, smtp_server, db):
    relay, downstream = await bouncing_relay(
        make_gateway, tmp_path, smtp_server, relay_bounces=False
    )
    message_id, _ = await send_failing(relay, "app@example.com")
    await asyncio.sleep(0.5)
    assert downstream.messages == [] and await bounces_for(db, message_id) == []


async def test_the_sweep_sends_a_bounce_the_live_path_missed(
    make_gateway, tmp_path, smtp_server, db, monkeypatch
):
    relay, downstream = await bouncing_relay(make_gateway, tmp_path, smtp_server)
    services = relay.gw.services
    services.plugins.unregister(services.relay.observer)  # as if the node died after the failure
    message_id, _ = await send_failing(relay, "app@example.com")
    await asyncio.sleep(0.3)
    assert await bounces_for(db, message_id) == []
    monkeypatch.setattr(bounces, "SWEEP_GRACE", 0.0)
    assert await services.relay.bounces.sweep() >= 1
    [row] = await bounces_for(db, message_id)
    await relay.gw.wait_done(str(row["id"]))
    # (the shared test database may hold other tests' unbounced failures: find ours)
    [dsn] = [m for m in downstream.messages if message_id.encode() in m.data]
    assert dsn.rcpt_tos == ("app@example.com",)
    await services.relay.bounces.sweep()
    assert len(await bounces_for(db, message_id)) == 1  # swept again: still one bounce


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("550 5.1.1 no such user", "5.1.1"),
        ("gave up after 8 attempts: 451 busy", "4.4.7"),
        ("template not approved", "5.0.0"),
    ],
)
def test_dsn_status_codes(reason, status):
    import datetime as dt

    from gateway.relay import dsn

    failure = dsn.Failure("a@b", "sms", "138", None, reason, dt.datetime.now(dt.UTC))
    assert dsn.status_code(failure) == status
    assert dsn.diagnostic(failure).startswith("X-msggate; sms: ")
