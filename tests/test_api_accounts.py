"""Sender accounts over the API, checked against a real SMTP server (STARTTLS + AUTH)."""

from __future__ import annotations

import datetime as dt
from email.utils import parseaddr
from typing import ClassVar

import msgspec

from gateway import hookimpl
from gateway.accounts import MASK
from gateway.channel import Channel, ContentKind, Sent
from gateway.plugins import Plugins
from tests.gateway_fixtures import unique

PASSWORD = "授权码-s3cret"


def secure_server(smtp_server, **options):
    return smtp_server(tls="starttls", users={"ops@example.com": PASSWORD}, **options)


async def create(gw, name, config):
    return await gw.post("/api/v1/accounts", {"channel": "email", "name": name, "config": config})


async def test_account_checked_against_server_and_password_never_returned(gateway, smtp_server, db):
    server = secure_server(smtp_server)
    name = unique("mail")
    status, body = await create(gateway, name, server.account_config())
    assert status == 201, body
    assert body["config"]["password"] == "********"
    assert body["config"]["username"] == "ops@example.com"
    assert server.messages == []  # validation sends no mail
    status, got = await gateway.get(f"/api/v1/accounts/{name}")
    assert status == 200 and PASSWORD not in str(got)
    status, listing = await gateway.get("/api/v1/accounts", params={"q": name})
    assert [a["name"] for a in listing] == [name] and PASSWORD not in str(listing)
    row = await db.fetchrow(
        "SELECT config::text AS config, secrets FROM accounts WHERE name=$1", name
    )
    assert "s3cret" not in row["config"]
    assert b"s3cret" not in row["secrets"] and PASSWORD.encode() not in row["secrets"]


async def test_wrong_password_is_422_with_the_servers_reason(gateway, smtp_server):
    server = secure_server(smtp_server)
    status, body = await create(gateway, unique("mail"), server.account_config(password="wrong"))
    assert status == 422
    assert "535" in body["error"]["message"]
    assert "authorization code" in body["error"]["message"]
    assert body["error"]["field"] == "config.password"


async def test_unreachable_server_is_422_naming_host_and_port(gateway, smtp_server):
    server = secure_server(smtp_server)
    status, body = await create(gateway, unique("mail"), server.account_config(port=1))
    assert status == 422
    assert "127.0.0.1:1" in body["error"]["message"]


async def test_malformed_config_names_the_field(gateway):
    cases = [
        ({"host": "h", "port": "587", "from": "a@example.com"}, "config.port"),
        ({"port": 587, "from": "a@example.com"}, "config"),
        ({"host": "h", "port": 587, "tls": "ssl", "from": "a@example.com"}, "config.tls"),
        ({"host": "h", "port": 587, "from": "not an address"}, "config.from"),
    ]
    for config, field in cases:
        status, body = await create(gateway, unique("bad"), config)
        assert status == 422, (config, body)
        assert body["error"]["field"].startswith(field), (config, body)


async def test_duplicate_account_name_is_409(gateway):
    name = unique("dup")
    for expected in (201, 409):
        status, _ = await gateway.post(
            "/api/v1/accounts", {"channel": "email", "name": name, "sandbox": True}
        )
        assert status == expected


async def test_patch_keeps_a_masked_password_and_checks_a_new_one(gateway, smtp_server):
    server = secure_server(smtp_server)
    name = unique("mail")
    _, created = await create(gateway, name, server.account_config())
    status, body = await gateway.request(
        "PATCH",
        f"/api/v1/accounts/{name}",
        json={"config": {"password": "********", "from": "运维中心 <ops@example.com>"}},
    )
    assert status == 200, body
    assert body["config"]["from"] == "运维中心 <ops@example.com>"
    assert body["revision"] == created["revision"] + 1
    status, body = await gateway.request(
        "PATCH", f"/api/v1/accounts/{name}", json={"config": {"password": "wrong"}}
    )
    assert status == 422 and "535" in body["error"]["message"]


async def test_patch_moving_the_smtp_host_with_the_masked_password_is_422_and_never_logs_in_there(
    gateway, smtp_server
):
    server = secure_server(smtp_server)
    name = unique("mail")
    status, _ = await create(gateway, name, server.account_config())
    assert status == 201
    # the operator's own server, which would take the stored password: nothing reaches it
    attacker = smtp_server(tls="none", users={"ops@example.com": "anything"})
    moves = [
        {"port": attacker.port, "tls": "none", "allow_insecure_auth": True, "password": MASK},
        {"port": attacker.port, "tls": "none", "allow_insecure_auth": True},
        {"host": "localhost", "password": MASK},
        {"verify_tls": False},
        {"tls": "tls", "port": 465},
    ]
    for changes in moves:
        status, body = await gateway.request(
            "PATCH", f"/api/v1/accounts/{name}", json={"config": changes}
        )
        assert status == 422, (changes, body)
        assert body["error"]["code"] == "secret_required" and body["error"]["field"] == (
            "config.password"
        )
        assert "password" in body["error"]["message"]
    assert attacker.connections == 0 and server.connections == 1  # only the create's check
    status, view = await gateway.get(f"/api/v1/accounts/{name}")
    assert view["revision"] == 1 and view["config"]["port"] == server.port


async def test_patch_moving_the_smtp_host_with_the_password_entered_again_is_checked_there(
    gateway, smtp_server
):
    server = secure_server(smtp_server)
    name = unique("mail")
    await create(gateway, name, server.account_config())
    moved = secure_server(smtp_server)
    config = {"port": moved.port, "ca_cert": moved.ca.pem, "password": PASSWORD}
    status, body = await gateway.request(
        "PATCH", f"/api/v1/accounts/{name}", json={"config": config}
    )
    assert status == 200, body
    assert body["config"]["port"] == moved.port and body["config"]["password"] == MASK
    assert moved.connections == 1


async def test_email_goes_out_through_a_real_account_intact(gateway, smtp_server):
    server = secure_server(smtp_server)
    name = unique("mail")
    await create(gateway, name, {**server.account_config(), "from": "运维中心 <ops@example.com>"})
    accepted = await gateway.send(
        channel="email",
        account=name,
        recipients=["张三 <zhang@example.com>", "li@example.com"],
        subject="服务器告警：磁盘使用率 95%",
        text="请尽快处理。",
        html="<p>请<b>尽快</b>处理。</p>",
    )
    done = await gateway.wait_done(accepted["id"])
    assert {d["status"] for d in done["deliveries"]} == {"sent"}, done
    received = await server.await_messages(2)
    parsed = received[0].message
    assert parsed["Subject"] == "服务器告警：磁盘使用率 95%"
    assert parseaddr(parsed["From"]) == ("运维中心", "ops@example.com")
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.get_body(("plain",)).get_content().strip() == "请尽快处理。"
    assert {r.login for r in received} == {"ops@example.com"}


async def test_permanent_smtp_refusal_fails_the_delivery_with_the_reason(gateway, smtp_server):
    server = smtp_server(reject={"gone@example.com": (550, "5.1.1 mailbox unavailable")})
    name = unique("mail")
    status, _ = await create(gateway, name, server.account_config())
    assert status == 201
    accepted = await gateway.send(
        channel="email",
        account=name,
        recipients=["gone@example.com", "ok@example.com"],
        subject="s",
        text="t",
    )
    done = await gateway.wait_done(accepted["id"])
    by_rcpt = {d["recipient"]: d for d in done["deliveries"]}
    assert by_rcpt["ok@example.com"]["status"] == "sent"
    failed = by_rcpt["gone@example.com"]
    assert failed["status"] == "failed" and failed["last_code"] == "550"
    assert "mailbox unavailable" in failed["last_error"]


async def test_account_with_waiting_deliveries_cannot_be_deleted(gateway, smtp_server):
    server = smtp_server()
    name = unique("mail")
    await create(gateway, name, server.account_config())
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    await gateway.send(
        channel="email", account=name, recipients=["a@example.com"], text="later", send_at=later
    )
    status, body = await gateway.request("DELETE", f"/api/v1/accounts/{name}")
    assert status == 409 and body["error"]["code"] == "in_use"
    assert "1 deliveries" in body["error"]["message"]


async def test_unused_account_is_deleted(gateway):
    name = unique("gone")
    await gateway.post("/api/v1/accounts", {"channel": "email", "name": name, "sandbox": True})
    status, _ = await gateway.request("DELETE", f"/api/v1/accounts/{name}")
    assert status == 204
    status, body = await gateway.get(f"/api/v1/accounts/{name}")
    assert status == 404 and body["error"]["code"] == "not_found"


class RenamedSecretAccount(msgspec.Struct):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"api_key"})
    api_key: str = msgspec.field(name="apiKey")


class RenamedSecretChannel(Channel):
    name = "renamed"
    content_kinds = frozenset({ContentKind.TEXT})
    account_type = RenamedSecretAccount

    async def send(self, account, outgoing):
        return Sent()


class RenamedSecretPlugin:
    @hookimpl
    def msggate_channels(self):
        return [RenamedSecretChannel()]


async def test_secret_renamed_on_the_wire_is_still_sealed_and_masked(make_gateway, db):
    gw = await make_gateway(plugins=Plugins.load(extra=[("renamed", RenamedSecretPlugin())]))
    name = unique("renamed")
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "renamed", "name": name, "config": {"apiKey": "k-123456"}}
    )
    assert status == 201, body
    assert body["config"] == {"apiKey": "********"}
    row = await db.fetchrow(
        "SELECT config::text AS config, secrets FROM accounts WHERE name=$1", name
    )
    assert "k-123456" not in row["config"] and b"k-123456" not in row["secrets"]
