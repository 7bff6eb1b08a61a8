"""POST/GET /api/v1/messages over real HTTP against a real PostgreSQL."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.gateway_fixtures import RunningGateway, unique


async def sandbox(gw: RunningGateway) -> str:
    name = unique("sandbox")
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "email", "name": name, "sandbox": True}
    )
    assert status == 201, body
    return name


def message(account: str, **extra) -> dict:
    return {
        "channel": "email",
        "account": account,
        "recipients": ["a@example.com"],
        "subject": "服务器告警",
        "text": "磁盘使用率 95%",
        **extra,
    }


async def test_accepted_message_is_committed_before_202(gateway, db):
    account = await sandbox(gateway)
    status, body = await gateway.post(
        "/api/v1/messages", message(account, recipients=["a@example.com", "b@example.com"])
    )
    assert status == 202
    assert [d["recipient"] for d in body["deliveries"]] == ["a@example.com", "b@example.com"]
    assert all(d["status"] == "queued" for d in body["deliveries"])
    rows = await db.fetch(
        "SELECT recipient FROM deliveries WHERE message_id = $1",
        __import__("uuid").UUID(body["id"]),
    )
    assert sorted(r["recipient"] for r in rows) == ["a@example.com", "b@example.com"]


async def test_sandbox_delivery_is_recorded_and_listed(gateway):
    account = await sandbox(gateway)
    accepted = await gateway.send(**message(account, html="<p>磁盘</p>"))
    done = await gateway.wait_done(accepted["id"])
    assert done["deliveries"][0]["status"] == "sent"
    status, listing = await gateway.get("/api/v1/sandbox/messages", params={"account": account})
    assert status == 200
    [item] = listing["items"]
    assert item["message_id"] == accepted["id"]
    assert item["subject"] == "服务器告警" and item["html"] == "<p>磁盘</p>"


async def test_message_history_shows_accepted_attempt_and_sent(gateway):
    account = await sandbox(gateway)
    accepted = await gateway.send(**message(account))
    done = await gateway.wait_done(accepted["id"])
    [delivery] = done["deliveries"]
    kinds = [e["kind"] for e in delivery["events"]]
    assert kinds == ["accepted", "attempt", "sent"]
    assert delivery["attempts"] == 1 and delivery["provider_id"].startswith("sandbox:")
    assert done["ingress"] == "http" and done["ingress_detail"]["api_key"].startswith("test-")


async def test_same_idempotency_key_gives_the_same_message(gateway, db):
    account = await sandbox(gateway)
    key = unique("idem")
    first = await gateway.send(**message(account, idempotency_key=key))
    async with gateway.http.post(
        "/api/v1/messages", json=message(account, idempotency_key=key)
    ) as response:
        second = await response.json()
        assert response.status == 202
        assert response.headers["Idempotent-Replayed"] == "true"
    assert second["id"] == first["id"]
    assert [d["id"] for d in second["deliveries"]] == [d["id"] for d in first["deliveries"]]
    count = await db.fetchval("SELECT count(*) FROM messages WHERE idempotency_key = $1", key)
    assert count == 1


async def test_concurrent_requests_with_one_idempotency_key_make_one_message(gateway, db):
    account = await sandbox(gateway)
    key = unique("idem")
    answers = await asyncio.gather(
        *[
            gateway.post("/api/v1/messages", message(account, idempotency_key=key))
            for _ in range(20)
        ]
    )
    assert {status for status, _ in answers} == {202}
    assert len({body["id"] for _, body in answers}) == 1
    assert await db.fetchval("SELECT count(*) FROM messages WHERE idempotency_key = $1", key) == 1


async def test_idempotency_key_reused_for_another_message_is_409(gateway):
    account = await sandbox(gateway)
    key = unique("idem")
    await gateway.send(**message(account, idempotency_key=key))
    status, body = await gateway.post(
        "/api/v1/messages", message(account, idempotency_key=key, text="other")
    )
    assert status == 409
    assert body["error"]["field"] == "idempotency_key"


async def test_idempotency_key_header_works_like_the_field(gateway):
    account = await sandbox(gateway)
    headers = {"Idempotency-Key": unique("hdr")}
    ids = []
    for _ in range(2):
        async with gateway.http.post(
            "/api/v1/messages", json=message(account), headers=headers
        ) as response:
            assert response.status == 202
            ids.append((await response.json())["id"])
    assert ids[0] == ids[1]


async def test_many_concurrent_accepts_are_all_committed(gateway, db):
    account = await sandbox(gateway)
    answers = await asyncio.gather(
        *[gateway.post("/api/v1/messages", message(account, subject=f"n{i}")) for i in range(200)]
    )
    ids = [__import__("uuid").UUID(body["id"]) for status, body in answers if status == 202]
    assert len(ids) == 200
    assert await db.fetchval("SELECT count(*) FROM messages WHERE id = ANY($1)", ids) == 200
    batcher = gateway.services.messages._batcher
    assert batcher.batches < batcher.items  # group commit shared transactions


async def test_send_at_in_the_future_waits(gateway):
    account = await sandbox(gateway)
    import datetime as dt

    when = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)).isoformat()
    accepted = await gateway.send(**message(account, send_at=when))
    _, body = await gateway.get(f"/api/v1/messages/{accepted['id']}")
    assert body["deliveries"][0]["status"] == "queued"
    done = await gateway.wait_done(accepted["id"], timeout=10)
    sent_at = done["deliveries"][0]["finished_at"]
    assert dt.datetime.fromisoformat(sent_at) >= dt.datetime.fromisoformat(when)


async def test_bad_input_names_the_field(gateway):
    account = await sandbox(gateway)
    cases = [
        ({"channel": "email", "recipients": ["a@example.com"], "text": "x"}, 422, "account"),
        (message(account, recipients=[]), 422, "recipients"),
        (message(account, recipients=[7]), 422, "recipients[0]"),
        (message(account, recipients=["not-an-address"]), 422, "recipients[0]"),
        (message(account, channel="pigeon"), 422, "channel"),
        (message("no-such-account"), 422, "account"),
        (message(account, text=None, subject="s"), 422, "text"),
        (message(account, send_at="2026-01-01T09:00:00"), 422, "send_at"),
        (message(account, send_at="tomorrow"), 422, "send_at"),
        (message(account, colour="red"), 422, None),
    ]
    for body, status, field in cases:
        got, answer = await gateway.post("/api/v1/messages", body)
        assert got == status, (body, answer)
        assert answer["error"]["code"] == "invalid" and answer["error"]["message"]
        if field:
            assert answer["error"].get("field") == field, (body, answer)


async def test_body_that_is_not_json_is_422(gateway):
    async with gateway.http.post(
        "/api/v1/messages", data=b"{nope", headers={"Content-Type": "application/json"}
    ) as response:
        assert response.status == 422
        assert "JSON" in (await response.json())["error"]["message"]


async def test_api_needs_a_valid_key(gateway):
    async with aiohttp.ClientSession() as anonymous:
        for headers in ({}, {"Authorization": "Bearer mg_wrong"}, {"Authorization": "Basic x"}):
            async with anonymous.get(gateway.url + "/api/v1/accounts", headers=headers) as response:
                assert response.status == 401
                assert (await response.json())["error"]["code"] == "unauthorized"


async def test_revoked_key_is_refused(gateway):
    record, key = await gateway.services.api_keys.create(unique("rev"))
    await gateway.services.api_keys.revoke(record.name)
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            gateway.url + "/api/v1/accounts", headers={"Authorization": f"Bearer {key}"}
        ) as r,
    ):
        assert r.status == 401


async def test_unknown_message_and_route_are_json_404(gateway):
    status, body = await gateway.get("/api/v1/messages/00000000-0000-0000-0000-000000000000")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await gateway.get("/api/v1/messages/not-a-uuid")
    assert status == 404
    status, body = await gateway.get("/api/v1/nothing-here")
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_health_reports_database(gateway):
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(gateway.url + "/api/v1/health") as response,
    ):
        assert response.status == 200
        assert await response.json() == {"status": "ok", "database": "ok"}


async def test_openapi_is_generated_from_the_handler_types(gateway):
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(gateway.url + "/api/openapi.json") as response,
    ):
        doc = await response.json()
    post = doc["paths"]["/api/v1/messages"]["post"]
    schema_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert set(schema["required"]) == {"channel", "account", "recipients"}
    assert schema["properties"]["recipients"]["maxItems"] == 1000
    assert "202" in post["responses"]
    assert doc["paths"]["/api/v1/accounts/{name}"].keys() >= {"get", "patch", "delete"}


async def test_text_longer_than_the_channel_takes_is_refused_on_accept(make_gateway):
    import msgspec

    from gateway import hookimpl
    from gateway.channel import Channel, ContentKind, Sent
    from gateway.plugins import Plugins

    class Tiny(Channel):
        name = "tiny"
        content_kinds = frozenset({ContentKind.TEXT})
        account_type = msgspec.Struct
        max_text_bytes = 10

        async def send(self, account, outgoing):
            return Sent()

    class TinyPlugin:
        @hookimpl
        def msggate_channels(self):
            return [Tiny()]

    gw = await make_gateway(plugins=Plugins.load(extra=[("tiny", TinyPlugin())]))
    account = unique("tiny")
    await gw.post("/api/v1/accounts", {"channel": "tiny", "name": account, "sandbox": True})
    status, body = await gw.post(
        "/api/v1/messages",
        {"channel": "tiny", "account": account, "recipients": ["x"], "text": "四个字符"},
    )
    assert status == 422 and body["error"]["field"] == "text"
    assert "12 bytes" in body["error"]["message"]
