"""Search boxes take text, not LIKE patterns: ``%``, ``_`` and ``\\`` match only themselves in
the account and access-rule searches (the API's and the console's: one store query each)."""

from __future__ import annotations

import secrets


async def test_account_search_treats_wildcards_as_text(gateway):
    tag = secrets.token_hex(4)
    names = [f"lk{tag}_a", f"lk{tag}xa", f"lk{tag}%b", f"lk{tag}\\c"]
    for name in names:
        status, body = await gateway.post(
            "/api/v1/accounts", {"channel": "email", "name": name, "sandbox": True}
        )
        assert status == 201, body

    async def found(q: str) -> list[str]:
        status, body = await gateway.get("/api/v1/accounts", params={"q": q})
        assert status == 200, body
        return sorted(a["name"] for a in body if tag in a["name"])

    assert await found("%") == [f"lk{tag}%b"]
    assert await found(f"{tag}_") == [f"lk{tag}_a"]
    assert await found(f"{tag}%") == [f"lk{tag}%b"]
    assert await found(f"{tag}\\") == [f"lk{tag}\\c"]
    assert await found(tag) == sorted(names)


async def test_access_rule_search_treats_wildcards_as_text(make_database, make_gateway):
    gw = await make_gateway(database_url=await make_database())  # rules apply to all on a db
    ids = []
    for name in ("home_net", "homeXnet", "all"):
        status, body = await gw.post("/api/v1/access-rules", {"name": name, "cidr": "127.0.0.1"})
        assert status == 201, body
        ids.append(body["id"])

    async def found(name: str) -> list[int]:
        status, body = await gw.get("/api/v1/access-rules", params={"name": name})
        assert status == 200, body
        return [r["id"] for r in body]

    assert await found("_") == [ids[0]]
    assert await found("%") == []
    assert await found("home") == ids[:2]
