"""The installed plugin inside a real gateway: entry point, API, dispatcher, receipts.

The gateway runs in the test's event loop on the embedded PostgreSQL (started once per session
in a temporary folder), exactly as ``msggate serve`` would load this plugin once installed.
"""

from __future__ import annotations

import atexit
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import SECRET, TOKEN, Receiver
from gateway.plugins import Plugins
from gateway.testing import RunningGateway, running_gateway, serving

from msggate_webhook.channel import WebhookChannel
from msggate_webhook.fake import ReceiverState, Reply, make_app
from msggate_webhook.receipts import RECEIPT_SECRET_ENV

RECEIPT_SECRET = "receipt-secret-89abcdef"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The gateway's data folder, with the embedded PostgreSQL, for the whole session.

    The embedded server stops when the process exits, so the folder must outlive the session:
    its removal is registered before the server starts, and exit handlers run last-in first-out.
    """
    folder = Path(tempfile.mkdtemp(prefix="msggate-webhook-test-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@pytest.fixture
async def gateway(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningGateway]:
    monkeypatch.setenv(RECEIPT_SECRET_ENV, RECEIPT_SECRET)
    async with running_gateway(data_dir) as gateway:
        yield gateway


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_the_plugin_is_found_through_its_entry_point() -> None:
    plugins = Plugins.load()
    [info] = [i for i in plugins.describe() if i.name == "webhook"]
    assert (info.distribution, info.channels) == ("msggate-webhook", ["webhook"])
    assert isinstance(plugins.channel("webhook"), WebhookChannel)
    assert not [p for p in plugins.problems if p.plugin == "webhook"]


def test_msggate_plugins_lists_it() -> None:
    msggate = Path(sys.executable).parent / "msggate"
    result = subprocess.run([msggate, "plugins"], capture_output=True, text=True, timeout=60)
    assert "webhook\tmsggate-webhook 0.1.0\tchannels: webhook" in result.stdout.splitlines()


async def test_a_message_is_delivered_signed_and_its_receipt_updates_the_delivery(
    gateway: RunningGateway, receiver: Receiver
) -> None:
    receiver.state.receipt_url = f"{gateway.url}/callbacks/webhook/receipts"
    receiver.state.receipt_secret = RECEIPT_SECRET
    receiver.state.undelivered["bob"] = "bob left the team"
    account = unique("hooks")
    shown = await gateway.create_account("webhook", account, receiver.config())
    assert shown["config"]["secret"] != SECRET and "Bearer" not in str(shown["config"])
    assert receiver.state.pings == 1  # validated by a real request when saved
    accepted = await gateway.send(
        channel="webhook",
        account=account,
        recipients=["alice", "bob"],
        subject="Deploy",
        text="build 1234 is live",
        variables={"build": 1234},
        options={"event": "deploy.done", "tags": ["ci"]},
    )
    done = await gateway.wait_done(accepted["id"], statuses=frozenset({"delivered", "undelivered"}))
    by_recipient = {d["recipient"]: d for d in done["deliveries"]}
    assert by_recipient["alice"]["status"] == "delivered"
    assert by_recipient["bob"]["status"] == "undelivered"
    assert by_recipient["bob"]["last_error"] == "bob left the team"
    documents = {r.document["recipient"]: r.document for r in receiver.state.received}
    assert documents["alice"]["event"] == "deploy.done"
    assert documents["alice"]["message_id"] == accepted["id"]
    assert documents["alice"]["variables"] == {"build": 1234}


async def test_faults_are_retried_or_failed_through_the_dispatcher(
    gateway: RunningGateway, receiver: Receiver
) -> None:
    receiver.state.replies["busy"] = Reply(status=503)
    receiver.state.replies["gone"] = Reply(status=410, body="hook deleted")
    account = unique("hooks")
    await gateway.create_account("webhook", account, receiver.config())
    accepted = await gateway.send(
        channel="webhook", account=account, recipients=["busy", "gone"], text="hello"
    )
    done = await gateway.wait_done(accepted["id"])
    by_recipient = {d["recipient"]: d for d in done["deliveries"]}
    busy, gone = by_recipient["busy"], by_recipient["gone"]
    assert busy["status"] == "failed" and busy["attempts"] == 3 and busy["last_code"] == "503"
    assert gone["status"] == "failed" and gone["attempts"] == 1 and gone["last_code"] == "410"


async def test_bad_accounts_and_options_are_refused_with_the_field(
    gateway: RunningGateway, receiver: Receiver
) -> None:
    status, body = await gateway.post(
        "/api/v1/accounts",
        {"channel": "webhook", "name": unique("bad"), "config": receiver.config(secret="x" * 20)},
    )
    assert status == 422 and body["error"]["field"] == "config.secret", body
    account = unique("hooks")
    await gateway.create_account("webhook", account, receiver.config())
    status, body = await gateway.post(
        "/api/v1/messages",
        {
            "channel": "webhook",
            "account": account,
            "recipients": ["alice"],
            "text": "hi",
            "options": {"event": "Not An Event"},
        },
    )
    assert status == 422 and body["error"]["field"] == "options.event", body


async def test_a_new_url_needs_the_secret_and_headers_again_before_anything_is_sent_there(
    gateway: RunningGateway, receiver: Receiver
) -> None:
    account = unique("hooks")
    await gateway.create_account("webhook", account, receiver.config())
    other = ReceiverState(secret=SECRET, required_headers={"Authorization": TOKEN})
    async with serving(make_app(other)) as elsewhere:
        moved = f"{elsewhere}/hooks/demo"
        for changes in ({"url": moved, "secret": "********"}, {"url": moved}):
            status, body = await gateway.request(
                "PATCH", f"/api/v1/accounts/{account}", json={"config": changes}
            )
            assert status == 422 and body["error"]["code"] == "secret_required", body
            assert body["error"]["field"] == "config.secret", body
            assert "headers" in body["error"]["message"], body
        assert (other.pings, other.received, other.refused) == (0, [], [])  # nothing came
        again = {"url": moved, "secret": SECRET, "headers": {"Authorization": TOKEN}}
        status, body = await gateway.request(
            "PATCH", f"/api/v1/accounts/{account}", json={"config": again}
        )
        assert status == 200, body
        assert other.pings == 1


async def test_receipts_without_a_valid_signature_are_refused(gateway: RunningGateway) -> None:
    url = "/callbacks/webhook/receipts"
    async with gateway.http.post(url, json={"receipts": []}) as response:
        assert response.status == 401
