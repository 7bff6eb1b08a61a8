"""Relay users and the access list over the API; the access list guards HTTP and SMTP alike.

Access-rule tests run on a database of their own: a rule applies to every gateway on it.
"""

from __future__ import annotations

import aiosmtplib
import pytest

from tests.gateway_fixtures import unique
from tests.relay_support import PASSWORD, message_ids, start_relay


async def test_relay_user_is_created_listed_and_deleted_and_only_a_hash_is_stored(gateway, db):
    name = unique("legacy") + "@example.com"
    status, body = await gateway.post(
        "/api/v1/relay-users", {"username": name, "password": PASSWORD}
    )
    assert status == 201, body
    assert body["username"] == name and "password" not in body
    stored = await db.fetchval("SELECT password_hash FROM relay_users WHERE username = $1", name)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    status, users = await gateway.get("/api/v1/relay-users")
    assert status == 200 and name in [u["username"] for u in users]
    assert all(set(u) == {"username", "created_at", "last_login_at"} for u in users)
    status, again = await gateway.post(
        "/api/v1/relay-users", {"username": name, "password": PASSWORD + "!"}
    )
    assert status == 409 and again["error"]["field"] == "username"
    assert (await gateway.request("DELETE", f"/api/v1/relay-users/{name}"))[0] == 204
    assert (await gateway.request("DELETE", f"/api/v1/relay-users/{name}"))[0] == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "short@example.com", "password": "elevenchars"}, "password"),
        ({"username": "has space", "password": PASSWORD}, "username"),
        ({"username": "x@example.com"}, "password"),
        ({"username": "same-as-password-x", "password": "same-as-password-x"}, "password"),
    ],
)
async def test_relay_user_policy_is_422_naming_the_field(gateway, body, field):
    status, answer = await gateway.post("/api/v1/relay-users", body)
    assert status == 422 and answer["error"]["field"] == field, answer


@pytest.fixture
async def isolated(make_database, make_gateway):
    """A factory of gateways on a database of their own."""
    url = await make_database()

    async def make(**settings):
        return await make_gateway(database_url=url, **settings)

    return make


async def test_access_rules_api(isolated):
    gw = await isolated()
    status, host = await gw.post(
        "/api/v1/access-rules", {"name": "监控服务器", "cidr": "127.0.0.1"}
    )
    assert status == 201, host
    assert host["cidr"] == "127.0.0.1/32" and host["name"] == "监控服务器"
    status, net = await gw.post("/api/v1/access-rules", {"name": "office", "cidr": "10.1.2.3/8"})
    assert status == 201 and net["cidr"] == "10.0.0.0/8"
    status, v6 = await gw.post("/api/v1/access-rules", {"name": "v6", "cidr": "2001:db8::1"})
    assert status == 201 and v6["cidr"] == "2001:db8::1/128"
    for bad in ("10.0.0.300", "10.0.0.0/33", "example.com", " "):
        status, error = await gw.post("/api/v1/access-rules", {"name": "bad", "cidr": bad})
        assert status == 422 and error["error"]["field"] == "cidr", (bad, error)
    status, found = await gw.get("/api/v1/access-rules", params={"ip": "10.9.8.7"})
    assert [r["id"] for r in found] == [net["id"]]
    status, found = await gw.get("/api/v1/access-rules", params={"name": "监控"})
    assert [r["id"] for r in found] == [host["id"]]
    status, error = await gw.get("/api/v1/access-rules", params={"ip": "nope"})
    assert status == 422 and error["error"]["field"] == "ip"
    for rule in (net, v6):
        assert (await gw.request("DELETE", f"/api/v1/access-rules/{rule['id']}"))[0] == 204
    assert (await gw.request("DELETE", f"/api/v1/access-rules/{net['id']}"))[0] == 404
    status, left = await gw.get("/api/v1/access-rules")
    assert [r["id"] for r in left] == [host["id"]]


async def test_http_caller_outside_the_access_list_gets_403_but_health_answers(isolated):
    proxy_view = await isolated(trusted_proxies="127.0.0.1")
    direct = await isolated()
    inside = {"X-Forwarded-For": "10.1.2.3"}
    status, rule = await proxy_view.request(  # from inside: nobody may shut themselves out
        "POST", "/api/v1/access-rules", json={"name": "lan", "cidr": "10.0.0.0/8"}, headers=inside
    )
    assert status == 201
    status, body = await direct.get("/api/v1/accounts")  # 127.0.0.1 is not in 10/8
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert "127.0.0.1" in body["error"]["message"]
    assert (await direct.get("/api/v1/health"))[0] == 200
    # a forwarded address counts only from a trusted proxy
    assert (await direct.get("/api/v1/accounts", headers=inside))[0] == 403
    assert (await proxy_view.get("/api/v1/accounts", headers=inside))[0] == 200
    spoofed = {"X-Forwarded-For": "10.1.2.3, 192.0.2.66"}  # the proxy saw 192.0.2.66
    assert (await proxy_view.get("/api/v1/accounts", headers=spoofed))[0] == 403
    status, _ = await proxy_view.request(
        "DELETE", f"/api/v1/access-rules/{rule['id']}", headers=inside
    )
    assert status == 204
    assert (await proxy_view.get("/api/v1/accounts"))[0] == 200  # at once where it changed
    direct.services.relay.access.invalidate()  # elsewhere within the cache time (5 s)
    assert (await direct.get("/api/v1/accounts"))[0] == 200


def alert() -> bytes:
    return (
        "From: app@example.com\r\nTo: ops@example.com\r\nSubject: by address\r\n"
        f"Message-ID: <{unique('m')}@example.com>\r\n\r\nhello\r\n"
    ).encode()


async def test_client_in_the_access_list_relays_without_auth(isolated, tmp_path):
    relay = await start_relay(isolated, tmp_path)
    status, _ = await relay.gw.post("/api/v1/access-rules", {"name": "me", "cidr": "127.0.0.1"})
    assert status == 201
    async with relay.session(tls=False) as smtp:  # a legacy app: no TLS, no AUTH
        await smtp.mail("app@example.com")
        await smtp.rcpt("ops@example.com")
        reply = await smtp.data(alert())
    [message_id] = message_ids(reply.message)
    _, detail = await relay.gw.get(f"/api/v1/messages/{message_id}")
    assert detail["ingress_detail"]["auth_user"] is None
    assert detail["ingress_detail"]["client"] == "127.0.0.1"


async def test_outside_a_non_empty_access_list_even_auth_does_not_relay(isolated, tmp_path):
    relay = await start_relay(isolated, tmp_path, trusted_proxies="127.0.0.1")
    user = await relay.user()
    status, rule = await relay.gw.request(
        "POST",
        "/api/v1/access-rules",
        json={"name": "lan", "cidr": "10.0.0.0/8"},
        headers={"X-Forwarded-For": "10.0.0.1"},  # from inside: nobody may shut themselves out
    )
    assert status == 201
    try:
        async with relay.session() as smtp:
            await smtp.login(user, PASSWORD)
            await smtp.mail("app@example.com")
            with pytest.raises(aiosmtplib.SMTPRecipientRefused) as info:
                await smtp.rcpt("ops@example.com")
        assert info.value.code == 554 and "5.7.1" in info.value.message
    finally:
        await relay.gw.request(
            "DELETE", f"/api/v1/access-rules/{rule['id']}", headers={"X-Forwarded-For": "10.0.0.1"}
        )
