"""Nobody shuts themselves out of the access list: the rule lives in the service, so the API
refuses (409 ``would_lock_out``) what the console refuses, for adding and for deleting.

Each test runs on a database of its own: a rule applies to every gateway on it.
"""

from __future__ import annotations

import pytest

from tests.browser_fixtures import add_console_user
from tests.test_console_http import CSRF_FIELD, Client

LAN = {"name": "lan", "cidr": "10.0.0.0/8"}
HOST = {"name": "this host", "cidr": "127.0.0.1"}


@pytest.fixture
async def isolated(make_database, make_gateway):
    url = await make_database()

    async def make(**settings):
        return await make_gateway(database_url=url, **settings)

    return make


async def test_api_refuses_a_first_rule_that_leaves_out_the_caller(isolated):
    gw = await isolated()
    status, body = await gw.post("/api/v1/access-rules", LAN)
    assert status == 409, body
    error = body["error"]
    assert error["code"] == "would_lock_out" and error["field"] == "cidr"
    assert "127.0.0.1" in error["message"]
    assert await gw.get("/api/v1/access-rules") == (200, [])


async def test_api_refuses_deleting_the_last_rule_that_covers_the_caller(isolated):
    gw = await isolated()
    status, host = await gw.post("/api/v1/access-rules", HOST)
    assert status == 201, host
    status, lan = await gw.post("/api/v1/access-rules", LAN)  # the caller is still covered
    assert status == 201, lan
    status, body = await gw.request("DELETE", f"/api/v1/access-rules/{host['id']}")
    assert status == 409 and body["error"]["code"] == "would_lock_out", body
    assert body["error"]["field"] == "id"
    assert (await gw.get("/api/v1/accounts"))[0] == 200  # still let in
    assert (await gw.request("DELETE", f"/api/v1/access-rules/{lan['id']}"))[0] == 204
    # the last rule may go: an empty list restricts nobody
    assert (await gw.request("DELETE", f"/api/v1/access-rules/{host['id']}"))[0] == 204


async def test_behind_a_trusted_proxy_the_forwarded_caller_is_the_one_kept_in(isolated):
    gw = await isolated(trusted_proxies="127.0.0.1")
    inside = {"X-Forwarded-For": "10.1.2.3"}

    async def call(method: str, path: str, **kwargs):
        return await gw.request(method, path, headers=inside, **kwargs)

    status, lan = await call("POST", "/api/v1/access-rules", json=LAN)
    assert status == 201, lan  # 10.1.2.3 is in it, though the proxy (127.0.0.1) is not
    status, office = await call("POST", "/api/v1/access-rules", json={"name": "o", "cidr": "::1"})
    assert status == 201, office
    status, body = await call("DELETE", f"/api/v1/access-rules/{lan['id']}")
    assert status == 409 and "10.1.2.3" in body["error"]["message"], body
    assert (await call("DELETE", f"/api/v1/access-rules/{office['id']}"))[0] == 204
    assert (await call("DELETE", f"/api/v1/access-rules/{lan['id']}"))[0] == 204


async def test_console_delete_is_refused_by_the_same_rule_and_says_why(isolated):
    gw = await isolated()
    status, host = await gw.post("/api/v1/access-rules", HOST)
    assert status == 201, host
    status, lan = await gw.post("/api/v1/access-rules", LAN)
    assert status == 201, lan
    console = Client(gw)
    try:
        assert await console.login(await add_console_user(gw, "admin")) == 303
        _, page, _ = await console.get("/access")
        token = CSRF_FIELD.search(page).group(1)
        form = {"_csrf": token, "confirmed": "1"}
        status, _, answer = await console.post(f"/access/{host['id']}/delete", form)
        assert status in (302, 303)
        _, page, _ = await console.get(answer.headers["Location"].removeprefix("/admin"))
        assert "无法删除" in page and "127.0.0.1" in page
        assert [r["id"] for r in (await gw.get("/api/v1/access-rules"))[1]] == [
            host["id"],
            lan["id"],
        ]
    finally:
        await console.close()
        await gw.request("DELETE", f"/api/v1/access-rules/{lan['id']}")
