"""The webhook channel against the fake receiver: the request, each kind of answer, the account."""

from __future__ import annotations

import datetime as dt
import email.utils
import socket

import msgspec
import pytest
from conftest import SECRET, TOKEN, Receiver, outgoing
from gateway.channel import AccountInvalid, AccountRef, Failed, RateLimit, Retry, Sent

from msggate_webhook.account import WebhookAccount, WebhookOptions
from msggate_webhook.channel import WebhookChannel
from msggate_webhook.classify import classify
from msggate_webhook.fake import Reply
from msggate_webhook.signing import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
    signature_problem,
)


@pytest.fixture
async def channel():
    channel = WebhookChannel()
    yield channel
    await channel.close()


async def test_delivery_document_carries_the_message_and_a_valid_signature(
    channel: WebhookChannel, receiver: Receiver
) -> None:
    sent = outgoing(
        "room-7",
        html="<p>build <b>1234</b></p>",
        variables={"build": 1234},
        template="deploy",
        attempt=2,
        options=WebhookOptions(event="deploy.done", tags=["ci"]),
    )
    outcome = await channel.send(receiver.account(), sent)
    [received] = receiver.state.received
    assert isinstance(outcome, Sent) and outcome.provider_id == received.id
    document = received.document
    assert document == {
        "event": "deploy.done",
        "message_id": sent.message_id,
        "delivery_id": sent.delivery_id,
        "attempt": 2,
        "recipient": "room-7",
        "subject": "Deploy finished",
        "text": "build 1234 is live",
        "html": "<p>build <b>1234</b></p>",
        "variables": {"build": 1234},
        "template": "deploy",
        "tags": ["ci"],
        "sent_at": document["sent_at"],
    }
    headers = received.headers
    assert headers[DELIVERY_HEADER] == sent.delivery_id and headers["Authorization"] == TOKEN
    timestamp = headers[TIMESTAMP_HEADER]
    assert headers[SIGNATURE_HEADER] == signature(SECRET, timestamp, received.body)


async def test_the_receiver_checks_the_signature_so_a_wrong_secret_fails(
    channel: WebhookChannel, receiver: Receiver
) -> None:
    wrong = receiver.account(secret="a-secret-the-receiver-never-saw")
    outcome = await channel.send(wrong, outgoing())
    assert isinstance(outcome, Failed) and outcome.code == "401"
    assert "signature mismatch" in outcome.reason
    unsigned = receiver.account(secret=None)
    outcome = await channel.send(unsigned, outgoing())
    assert isinstance(outcome, Failed) and "missing X-Msggate-Timestamp" in outcome.reason
    assert receiver.state.received == []


def test_signature_is_refused_outside_the_time_window() -> None:
    body = b'{"event":"ping"}'
    old = str(int(dt.datetime(2020, 1, 1, tzinfo=dt.UTC).timestamp()))
    headers = {TIMESTAMP_HEADER: old, SIGNATURE_HEADER: signature(SECRET, old, body)}
    assert "away from now" in (signature_problem(SECRET, headers, body) or "")
    assert signature_problem(SECRET, headers, body, now=int(old) + 10) is None
    assert signature_problem(SECRET, headers, body + b" ", now=int(old)) == "signature mismatch"


@pytest.mark.parametrize(
    ("reply", "after"),
    [
        (Reply(status=503), 0.0),
        (Reply(status=503, retry_after="30"), 30.0),
        (Reply(status=429, retry_after="7"), 7.0),
        (Reply(status=408), 0.0),
        (Reply(status=502, body="<html>bad gateway</html>"), 0.0),
    ],
)
async def test_busy_answers_are_retried_no_sooner_than_retry_after(
    channel: WebhookChannel, receiver: Receiver, reply: Reply, after: float
) -> None:
    receiver.state.replies["user-42"] = reply
    outcome = await channel.send(receiver.account(), outgoing())
    assert isinstance(outcome, Retry), outcome
    assert outcome.code == str(reply.status) and outcome.after == after


def test_retry_after_may_be_an_http_date() -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    headers = {"Retry-After": email.utils.format_datetime(later, usegmt=True)}
    outcome = classify(503, headers, b"")
    assert isinstance(outcome, Retry) and 100 < outcome.after <= 120


@pytest.mark.parametrize("status", [400, 404, 410, 413, 422])
async def test_other_client_errors_fail_with_the_status_and_the_receivers_words(
    channel: WebhookChannel, receiver: Receiver, status: int
) -> None:
    receiver.state.replies["user-42"] = Reply(status=status, body='{"error": "no such user"}')
    outcome = await channel.send(receiver.account(), outgoing())
    assert isinstance(outcome, Failed) and outcome.code == str(status)
    assert outcome.reason.startswith(f"HTTP {status} ") and "no such user" in outcome.reason


async def test_a_redirect_fails_and_says_where_to(
    channel: WebhookChannel, receiver: Receiver
) -> None:
    outcome = classify(308, {"Location": "https://hooks.example.com/new"}, b"")
    assert isinstance(outcome, Failed) and "https://hooks.example.com/new" in outcome.reason


def test_answers_without_a_json_id_are_sent_without_a_provider_id() -> None:
    assert classify(204, {}, b"") == Sent()
    assert classify(200, {}, b"OK") == Sent(answer="OK")
    assert classify(202, {}, b'{"id": 17}').provider_id == "17"
    assert classify(200, {}, b'{"id": true}').provider_id is None


def test_a_secret_the_receiver_echoes_is_masked() -> None:
    outcome = classify(400, {}, f"bad token {TOKEN}".encode(), secrets=[TOKEN])
    assert TOKEN not in outcome.reason and "***" in outcome.reason


async def test_no_answer_in_time_is_retried_with_the_same_delivery_id(
    channel: WebhookChannel, receiver: Receiver
) -> None:
    receiver.state.replies["slow"] = Reply(status=200, delay=1.0)
    sent = outgoing("slow")
    outcome = await channel.send(receiver.account(timeout=0.2), sent)
    assert isinstance(outcome, Retry) and outcome.code == "timeout"
    receiver.state.replies.clear()
    again = await channel.send(receiver.account(), sent)
    assert isinstance(again, Sent)
    # the receiver saw the slow attempt finish too, and kept one copy by delivery id
    assert [r.document["delivery_id"] for r in receiver.state.received] == [sent.delivery_id]


async def test_an_unreachable_receiver_is_retried(channel: WebhookChannel) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    account = msgspec.convert({"url": f"http://127.0.0.1:{port}/hook"}, WebhookAccount)
    outcome = await channel.send(AccountRef("down", 1, account), outgoing())
    assert isinstance(outcome, Retry) and outcome.code == "connect"


async def test_text_or_html_over_the_limit_fails_before_any_request(
    channel: WebhookChannel, receiver: Receiver
) -> None:
    big = "x" * (WebhookChannel.max_text_bytes + 1)
    for fields in ({"text": big}, {"text": "short", "html": big}):
        outcome = await channel.send(receiver.account(), outgoing(**fields))
        assert isinstance(outcome, Failed) and outcome.code == "too_long", outcome
    assert receiver.state.received == [] and receiver.state.refused == []


async def test_validate_account_pings_and_blames_the_right_field(
    channel: WebhookChannel, receiver: Receiver
) -> None:
    await channel.validate_account(receiver.account())
    assert receiver.state.pings == 1
    with pytest.raises(AccountInvalid) as refused:
        await channel.validate_account(receiver.account(secret="another-secret-entirely"))
    assert refused.value.field == "secret" and "401" in refused.value.reason
    with pytest.raises(AccountInvalid) as refused:
        await channel.validate_account(receiver.account(headers={}))
    assert refused.value.field == "headers"
    with pytest.raises(AccountInvalid) as refused:
        await channel.validate_account(receiver.account(url=f"{receiver.url}/nowhere"))
    assert refused.value.field == "url" and "404" in refused.value.reason


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "https://example.com/x", "headers": {"Content-Type": "text/plain"}}, "headers"),
        ({"url": "https://example.com/x", "headers": {"X-Msggate-Signature": "x"}}, "headers"),
        ({"url": "https://example.com/x", "headers": {"Bad Name": "x"}}, "headers"),
        ({"url": "https://example.com/x", "headers": {"X-A": "1\r\nX-B: 2"}}, "headers"),
    ],
)
def test_account_check_names_the_wrong_field(config: dict, field: str) -> None:
    account = msgspec.convert(config, WebhookAccount)
    with pytest.raises(AccountInvalid) as refused:
        account.check()
    assert refused.value.field == field


def test_account_rejects_a_short_secret_and_unknown_fields() -> None:
    for config in (
        {"url": "https://example.com/x", "secret": "short"},
        {"url": "https://example.com/x", "sekret": "x" * 20},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(config, WebhookAccount)


def test_rate_limit_is_declared_from_the_accounts_per_minute(receiver: Receiver) -> None:
    channel = WebhookChannel()
    assert channel.rate_limits(receiver.account(), outgoing()) == []
    limited = receiver.account("paced", per_minute=30)
    assert channel.rate_limits(limited, outgoing()) == [RateLimit("webhook:paced", 30, 60.0)]


def test_recipients_are_checked_at_accept() -> None:
    channel = WebhookChannel()
    assert channel.check_recipient("user-42") is None
    assert channel.check_recipient("  ") and channel.check_recipient("a\nb")
    assert channel.check_recipient("x" * 257)
