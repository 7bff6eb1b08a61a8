"""When PostgreSQL is unreachable nothing is half-accepted: 503, and service resumes after."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from tests.gateway_fixtures import unique
from tests.tcp_proxy import TcpProxy


async def test_accept_answers_503_while_the_database_is_down_and_recovers(
    make_gateway, database_url, db
):
    parts = urlsplit(database_url)
    proxy = await TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    try:
        gw = await make_gateway(database_url=proxied, poll_seconds=0.2)
        account = unique("sb")
        await gw.post("/api/v1/accounts", {"channel": "email", "name": account, "sandbox": True})
        body = {
            "channel": "email",
            "account": account,
            "recipients": ["a@example.com"],
            "text": "during outage",
            "idempotency_key": unique("k"),
        }
        await gw.get("/api/v1/accounts")  # warm the account cache: the outage hits the commit

        await proxy.cut()
        async with gw.http.post("/api/v1/messages", json=body) as response:
            assert response.status == 503
            assert response.headers["Retry-After"]
            assert (await response.json())["error"]["code"] == "unavailable"
        async with gw.http.get("/api/v1/health") as response:
            assert response.status == 503
        assert (
            await db.fetchval(
                "SELECT count(*) FROM messages WHERE idempotency_key = $1", body["idempotency_key"]
            )
            == 0
        )

        await proxy.restore()
        status, accepted = await gw.post("/api/v1/messages", body)
        assert status == 202, accepted
        done = await gw.wait_done(accepted["id"])
        assert done["deliveries"][0]["status"] == "sent"
    finally:
        await proxy.close()
