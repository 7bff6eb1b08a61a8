"""Bad input at the HTTP edge: text the database cannot store, deep nesting, bodies that are
not JSON, over-long idempotency keys and unknown methods get a 4xx naming what is wrong, over
real HTTP against a real PostgreSQL, and never disturb a good request."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from gateway.messages import MessageIn
from gateway.storable import MAX_JSON_DEPTH, find_unstorable
from tests.gateway_fixtures import RunningGateway, unique

NUL = "\x00"


async def sandbox(gw: RunningGateway) -> str:
    name = unique("input")
    await gw.create_account("email", name, sandbox=True)
    return name


def message(account: str, **extra) -> dict:
    return {"channel": "email", "account": account, "recipients": ["a@example.com"], **extra}


def nested(depth: int) -> list:
    """A list ``depth`` levels deep: [[[...]]]."""
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


async def raw_post(gw: RunningGateway, path: str, body: bytes | str, **headers: str):
    headers = {"Content-Type": "application/json", **headers}
    async with gw.http.post(path, data=body, headers=headers) as response:
        return response.status, await response.json(), response.headers


def test_unstorable_text_is_found_with_its_field_path():
    msg = MessageIn(
        channel="email",
        account="a",
        recipients=["ok@example.com", "b" + NUL],
        variables={"a": {"b": ["fine", "x" + NUL]}},
    )
    field, problem = find_unstorable(msg)
    assert field == "recipients[1]" and "NUL" in problem
    clean = MessageIn(channel="email", account="a", recipients=["x"], variables={"a": [1, "é"]})
    assert find_unstorable(clean) is None
    field, problem = find_unstorable(MessageIn(channel="e", account="a", recipients=["\ud800"]))
    assert field == "recipients[0]" and "surrogate" in problem
    field, problem = find_unstorable({"ok": {"k" + NUL: 1}})
    assert field == "ok" and "key" in problem


async def test_nul_in_any_body_text_is_422_naming_the_field_and_nothing_is_stored(gateway, db):
    account = await sandbox(gateway)
    cases = [
        ("/api/v1/messages", message(account, subject="a" + NUL, text="t"), "subject"),
        ("/api/v1/messages", message(account, text="t" + NUL), "text"),
        ("/api/v1/messages", message(account, html="<p>" + NUL), "html"),
        ("/api/v1/messages", message(account, recipients=["a@example.com", NUL]), "recipients[1]"),
        (
            "/api/v1/messages",
            message(account, text="t", variables={"a": [{"b": NUL}]}),
            "variables.a[0].b",
        ),
        ("/api/v1/messages", message(account, text="t", variables={"k" + NUL: 1}), "variables"),
        (
            "/api/v1/messages",
            message(account, text="t", idempotency_key="k" + NUL),
            "idempotency_key",
        ),
        ("/api/v1/messages", message(account, text="t", template="t" + NUL), "template"),
        ("/api/v1/messages", message(account + NUL, text="t"), "account"),
        ("/api/v1/accounts", {"channel": "email", "name": "n" + NUL, "sandbox": True}, "name"),
        (
            "/api/v1/accounts",
            {"channel": "email", "name": "n", "config": {"host": NUL}},
            "config.host",
        ),
        ("/api/v1/relay-users", {"username": "u", "password": "p" * 12 + NUL}, "password"),
        ("/api/v1/access-rules", {"name": "r" + NUL, "cidr": "10.0.0.0/8"}, "name"),
    ]
    before = await db.fetchval("SELECT count(*) FROM messages")
    for path, body, field in cases:
        status, answer = await gateway.post(path, body)
        assert status == 422, (path, body, answer)
        assert answer["error"]["field"] == field, (path, body, answer)
        assert "NUL" in answer["error"]["message"], answer
    status, answer = await gateway.request(
        "PATCH", f"/api/v1/accounts/{account}", json={"config": {"x": NUL}}
    )
    assert status == 422 and answer["error"]["field"] == "config.x", answer
    assert await db.fetchval("SELECT count(*) FROM messages") == before


async def test_lone_surrogates_and_invalid_utf8_in_a_body_are_422(gateway):
    account = await sandbox(gateway)
    body = json.dumps(message(account, text="HERE")).encode()
    for bad in (b"\\ud800", b"\\udc00x", b"\xed\xa0\x80", b"\xff"):
        status, answer, _ = await raw_post(gateway, "/api/v1/messages", body.replace(b"HERE", bad))
        assert status == 422 and answer["error"]["code"] == "invalid", (bad, answer)


async def test_send_at_with_any_iso_offset_is_kept_in_utc_and_out_of_range_is_422(gateway):
    account = await sandbox(gateway)
    # ISO 8601 allows offsets PostgreSQL refuses (beyond ±15:59): it was a 500
    accepted = await gateway.send(**message(account, text="t", send_at="2999-10-27T22:10:17-20:30"))
    _, detail = await gateway.get(f"/api/v1/messages/{accepted['id']}")
    assert detail["send_at"].startswith("2999-10-28T18:40:17"), detail["send_at"]
    for bad in ("0001-01-01T00:00:00+10:00", "9999-12-31T23:59:59-10:00"):
        status, answer = await gateway.post(
            "/api/v1/messages", message(account, text="t", send_at=bad)
        )
        assert status == 422 and answer["error"]["field"] == "send_at", (bad, answer)


async def test_bad_text_does_not_disturb_good_messages_sent_at_the_same_time(gateway, db):
    account = await sandbox(gateway)
    bad = [gateway.post("/api/v1/messages", message(account, text=NUL)) for _ in range(20)]
    good = [gateway.post("/api/v1/messages", message(account, text=f"ok {i}")) for i in range(20)]
    answers = await asyncio.gather(*bad, *good)
    assert [s for s, _ in answers[:20]] == [422] * 20
    assert [s for s, _ in answers[20:]] == [202] * 20
    ids = [a["id"] for _, a in answers[20:]]
    stored = await db.fetchval("SELECT count(*) FROM messages WHERE id::text = ANY($1)", ids)
    assert stored == 20


async def test_nul_in_query_and_path_parameters_is_422_naming_the_parameter(gateway):
    account = await sandbox(gateway)
    cases = [
        ("GET", "/api/v1/accounts", {"q": NUL}, "q"),
        ("GET", "/api/v1/accounts", {"channel": "e" + NUL}, "channel"),
        ("GET", "/api/v1/sandbox/messages", {"account": NUL}, "account"),
        ("GET", "/api/v1/sandbox/messages", {"recipient": NUL}, "recipient"),
        ("GET", "/api/v1/access-rules", {"name": NUL}, "name"),
        ("GET", "/api/v1/plugins", {"anything": NUL}, "anything"),
        ("GET", f"/api/v1/accounts/{account}%00", {}, "name"),
        ("PATCH", f"/api/v1/accounts/{account}%00", {}, "name"),
        ("DELETE", f"/api/v1/accounts/{account}%00", {}, "name"),
        ("DELETE", "/api/v1/relay-users/u%00", {}, "username"),
        ("GET", "/api/v1/messages/x%00", {}, "id"),
    ]
    for method, path, params, field in cases:
        url = aiohttp.client.URL(gateway.url + path, encoded=True)
        async with gateway.http.request(method, url, params=params, json={}) as response:
            answer = await response.json()
            assert response.status == 422, (method, path, params, answer)
            assert answer["error"]["field"] == field, (method, path, answer)
            assert "NUL" in answer["error"]["message"], answer


async def test_typed_query_parameters_are_refused_when_not_whole_numbers(gateway):
    for value in ("1e2", "", "ten", "0", "501", " 5"):
        status, body = await gateway.get("/api/v1/sandbox/messages", params={"limit": value})
        assert status == 422 and body["error"]["field"] == "limit", (value, body)
    status, _ = await gateway.get("/api/v1/sandbox/messages", params={"limit": "5"})
    assert status == 200
    status, body = await gateway.request("DELETE", "/api/v1/access-rules/1e3")
    assert status == 404 and body["error"]["field"] == "id", body


async def test_deeply_nested_json_is_422_not_500(gateway):
    account = await sandbox(gateway)
    status, body = await gateway.post(
        "/api/v1/messages", message(account, text="t", variables={"a": nested(MAX_JSON_DEPTH)})
    )
    assert status == 422 and body["error"]["field"].startswith("variables.a[0][0]"), body
    assert "nested deeper" in body["error"]["message"]
    # far deeper than the decoder recurses: refused before anything else looks at it
    deep = json.dumps(message(account, text="t", variables={"a": "HERE"}))
    deep = deep.replace('"HERE"', '{"a":' * 100_000 + "1" + "}" * 100_000)
    status, body, _ = await raw_post(gateway, "/api/v1/messages", deep)
    assert status == 422 and "nested deeper" in body["error"]["message"], body
    status, body, _ = await raw_post(gateway, "/api/v1/accounts", "[" * 50_000 + "]" * 50_000)
    assert status == 422, body
    # one level less than the limit is stored and read back
    fits = {"a": nested(MAX_JSON_DEPTH - 2)}  # the body object and variables are two levels
    accepted = await gateway.send(**message(account, text="t", variables=fits))
    _, detail = await gateway.get(f"/api/v1/messages/{accepted['id']}")
    assert detail["variables"] == fits


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/octet-stream",
        "application/json; charset=latin-1",
        "application/jsonx",
        None,
    ],
)
async def test_a_body_not_declared_json_is_415(gateway, content_type):
    account = await sandbox(gateway)
    body = json.dumps(message(account, text="t")).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    # skip_auto_headers: else aiohttp adds application/octet-stream to a header-less body
    async with gateway.http.post(
        "/api/v1/messages", data=body, headers=headers, skip_auto_headers=["Content-Type"]
    ) as response:
        answer = await response.json()
    assert response.status == 415, answer
    assert answer["error"]["code"] == "unsupported_media_type"
    assert answer["error"]["field"] == "Content-Type"
    assert "application/json" in answer["error"]["message"] or "UTF-8" in answer["error"]["message"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.msggate+json",
    ],
)
async def test_json_content_types_are_accepted(gateway, content_type):
    account = await sandbox(gateway)
    body = json.dumps(message(account, text="t"))
    status, answer, _ = await raw_post(
        gateway, "/api/v1/messages", body, **{"Content-Type": content_type}
    )
    assert status == 202, answer


async def test_over_long_idempotency_key_is_422_never_cut(gateway, db):
    account = await sandbox(gateway)
    long_a, long_b = "k" * 200 + "a", "k" * 200 + "b"  # one cut to 200 would collide
    for key in (long_a, long_b):
        status, answer, _ = await raw_post(
            gateway,
            "/api/v1/messages",
            json.dumps(message(account, text=key)),
            **{"Idempotency-Key": key},
        )
        assert status == 422 and answer["error"]["field"] == "Idempotency-Key", answer
        assert "201" in answer["error"]["message"] and "200" in answer["error"]["message"]
        status, answer = await gateway.post(
            "/api/v1/messages", message(account, text=key, idempotency_key=key)
        )
        assert status == 422 and answer["error"]["field"] == "idempotency_key", answer
    stored = await db.fetchval(
        "SELECT count(*) FROM messages WHERE idempotency_key LIKE $1", "k" * 200 + "%"
    )
    assert stored == 0
    exact = "k" * 200
    status, answer, _ = await raw_post(
        gateway,
        "/api/v1/messages",
        json.dumps(message(account, text="t")),
        **{"Idempotency-Key": exact},
    )
    assert status == 202, answer


async def test_idempotency_key_header_and_field_must_agree(gateway):
    account = await sandbox(gateway)
    status, answer, _ = await raw_post(
        gateway,
        "/api/v1/messages",
        json.dumps(message(account, text="t", idempotency_key=unique("field"))),
        **{"Idempotency-Key": unique("header")},
    )
    assert status == 422 and answer["error"]["field"] == "Idempotency-Key", answer


async def test_unknown_method_is_405_with_allow_and_a_json_body(gateway):
    cases = {
        ("PUT", "/api/v1/messages"): {"POST"},
        ("POST", "/api/v1/health"): {"GET"},
        ("PUT", "/api/v1/accounts/x"): {"GET", "PATCH", "DELETE"},
        ("TRACE", "/api/v1/access-rules"): {"GET", "POST"},
    }
    for (method, path), allowed in cases.items():
        async with gateway.http.request(method, path) as response:
            assert response.status == 405, (method, path)
            methods = {m.strip() for m in response.headers["Allow"].split(",")}
            assert methods == allowed, (method, path, methods)
            body = await response.json()
            assert body["error"]["code"] == "method_not_allowed"
            assert method in body["error"]["message"]


async def test_openapi_declares_the_limits_the_server_enforces(gateway):
    async with (
        aiohttp.ClientSession() as anonymous,
        anonymous.get(gateway.url + "/api/openapi.json") as response,
    ):
        doc = await response.json()
    paths, schemas = doc["paths"], doc["components"]["schemas"]

    def params(path: str, method: str = "get") -> dict:
        return {p["name"]: p for p in paths[path][method].get("parameters", [])}

    sandbox = params("/api/v1/sandbox/messages")
    assert sandbox["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert sandbox["before"]["schema"]["type"] == "integer"
    assert params("/api/v1/messages/{id}")["id"]["schema"]["format"] == "uuid"
    rule_id = params("/api/v1/access-rules/{id}", "delete")["id"]
    assert rule_id["schema"]["type"] == "integer" and rule_id["required"] is True
    name = params("/api/v1/accounts/{name}", "patch")["name"]["schema"]
    assert name["maxLength"] == 200 and name["pattern"]

    message = schemas["MessageIn"]
    assert {tuple(rule["required"]) for rule in message["anyOf"]} == {
        ("text",),
        ("html",),
        ("variables",),
    }
    assert message["properties"]["idempotency_key"]["anyOf"][0]["maxLength"] == 200
    send_at = message["properties"]["send_at"]["anyOf"][0]
    assert send_at["format"] == "date-time"
    account = schemas["AccountIn"]
    assert {tuple(rule["required"]) for rule in account["anyOf"]} == {("sandbox",), ("config",)}
    assert "delivered" in schemas["DeliveryOut"]["properties"]["status"]["enum"]
    assert schemas["RelayUserIn"]["properties"]["password"]["minLength"] == 12

    post = paths["/api/v1/messages"]["post"]["responses"]
    assert set(post) == {"202", "401", "403", "409", "413", "415", "422", "429", "503"}
    assert "Retry-After" in post["503"]["headers"]
    health = paths["/api/v1/health"]["get"]["responses"]
    assert set(health) == {"200", "422", "429", "503"}
    assert health["503"]["content"] == health["200"]["content"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            assert "default" not in operation["responses"], (method, path)


async def test_idempotency_key_header_with_bytes_that_are_not_utf8_is_422(gateway):
    """aiohttp reads such bytes as lone surrogates, which cannot reach the database."""
    account = await sandbox(gateway)
    body = json.dumps(message(account, text="t")).encode()
    host, port = gateway.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            + f"Authorization: Bearer {gateway.api_key}\r\n".encode()
            + b"Content-Type: application/json\r\nIdempotency-Key: key-\xff\xfe\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 422"), answer
    assert json.loads(payload)["error"]["field"] == "Idempotency-Key"
