"""250 means committed: database down is 451, the reply waits for the commit, SIGKILL loses
nothing that got 250."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import aiosmtplib
import asyncpg
import pytest

from tests.gateway_fixtures import unique
from tests.processes import free_port, start_gateway, start_sink
from tests.relay_support import PASSWORD, message_ids, start_relay
from tests.tcp_proxy import TcpProxy


def mail(subject: str, mid: str | None = None) -> bytes:
    return (
        f"From: app@example.com\r\nTo: ops@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{mid or unique('m')}@example.com>\r\n\r\nbody of {subject}\r\n"
    ).encode()


async def test_database_down_at_the_final_dot_is_451_and_the_retry_is_taken(
    make_gateway, database_url, db, tmp_path
):
    parts = urlsplit(database_url)
    proxy = await TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    try:
        relay = await start_relay(make_gateway, tmp_path, database_url=proxied, poll_seconds=0.2)
        user = await relay.user()
        subject, mid = unique("outage"), unique("m")
        async with relay.session() as smtp:
            await smtp.login(user, PASSWORD)
            await smtp.mail("app@example.com")
            await smtp.rcpt("ops@example.com")
            await proxy.cut()
            with pytest.raises(aiosmtplib.SMTPDataError) as info:
                await smtp.data(mail(subject, mid))
            assert info.value.code == 451 and "4.3.0" in info.value.message
            assert "Error" not in info.value.message and "Connection" not in info.value.message
        async with relay.session() as smtp:  # a new client meanwhile: AUTH is "try later"
            with pytest.raises(aiosmtplib.SMTPAuthenticationError) as auth:
                await smtp.auth_plain(user, PASSWORD)
            assert auth.value.code == 454
        assert await db.fetchval("SELECT count(*) FROM messages WHERE subject = $1", subject) == 0

        await proxy.restore()
        code, reply = await relay.send(mail(subject, mid), ["ops@example.com"], user=user)
        assert code == 250, reply
        done = await relay.gw.wait_done(message_ids(reply)[0])
        assert done["deliveries"][0]["status"] == "sent"
        assert await db.fetchval("SELECT count(*) FROM messages WHERE subject = $1", subject) == 1
    finally:
        await proxy.close()


async def test_250_is_sent_only_after_the_commit(make_gateway, db, tmp_path):
    relay = await start_relay(make_gateway, tmp_path, dispatch=False)
    store = relay.gw.services.store
    real_insert = store.insert_messages
    committed: dict[str, float] = {}

    async def slow_insert(batch, **options):
        await asyncio.sleep(0.3)  # a slow disk: the client must wait for it
        result = await real_insert(batch, **options)
        for m in batch:
            committed[str(m.id)] = time.monotonic()
        return result

    store.insert_messages = slow_insert  # type: ignore[method-assign]
    user = await relay.user()
    async with relay.session() as smtp:
        await smtp.login(user, PASSWORD)
        await smtp.mail("app@example.com")
        await smtp.rcpt("ops@example.com")
        reply = await smtp.data(mail(unique("durable")))
        answered = time.monotonic()
    [message_id] = message_ids(reply.message)
    assert committed[message_id] <= answered
    row = await db.fetchrow(
        "SELECT m.ingress, (SELECT count(*) FROM deliveries d WHERE d.message_id = m.id) AS n,"
        " (SELECT length(data) FROM message_raw r WHERE r.message_id = m.id) AS raw"
        " FROM messages m WHERE m.id = $1",
        uuid.UUID(message_id),
    )
    assert row["ingress"] == "smtp" and row["n"] == 1 and row["raw"] > 0


def sink_subjects(record: Path) -> set[str]:
    if not record.exists():
        return set()
    return {json.loads(line)["subject"] for line in record.read_text().splitlines() if line}


@pytest.mark.slow
async def test_sigkill_after_250_loses_no_relayed_message(make_database, secret_key, tmp_path):
    database_url = await make_database()
    record = tmp_path / "received.jsonl"
    sink, sink_port = await start_sink(record, delay=0.2)
    http_port = free_port()
    account = "sink-mail"
    flags = (
        *("--database-url", database_url, "--secret-key", secret_key),
        *("--data-dir", str(tmp_path / "data"), "--http-host", "127.0.0.1"),
        *("--http-port", str(http_port), "--smtp-host", "127.0.0.1"),
        *("--relay-default-account", account, "--lease-seconds", "3"),
        *("--poll-seconds", "0.5", "--retry-base-seconds", "0.5", "--dispatch-concurrency", "8"),
    )
    gateway = await start_gateway(*flags)
    try:
        text = "\n".join(gateway.lines)
        key = gateway.first_run()["api_key"]
        smtp_port = int(re.search(r"SMTP     : [\d.]+:(\d+)", text).group(1))
        url = f"http://127.0.0.1:{http_port}"
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as http:
            for path, body in (
                (
                    "/api/v1/accounts",
                    {
                        "channel": "email",
                        "name": account,
                        "config": {
                            "host": "127.0.0.1",
                            "port": sink_port,
                            "tls": "none",
                            "from": "Relay <relay@example.com>",
                        },
                    },
                ),
                ("/api/v1/access-rules", {"name": "this host", "cidr": "127.0.0.1"}),
            ):
                async with http.post(url + path, json=body) as response:
                    assert response.status == 201, await response.text()

        accepted: list[str] = []
        stop = asyncio.Event()

        async def client(n: int) -> None:  # allowed by address: no AUTH, no STARTTLS
            smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, start_tls=False)
            try:
                await smtp.connect()
                for i in range(2000):
                    if stop.is_set():
                        return
                    subject = f"c{n}-{i}"
                    await smtp.sendmail("app@example.com", ["ops@example.com"], mail(subject))
                    accepted.append(subject)  # only after 250
            except (aiosmtplib.SMTPException, OSError):
                return  # the gateway is gone
            finally:
                smtp.close()

        clients = [asyncio.create_task(client(n)) for n in range(4)]
        for _ in range(400):
            if len(sink_subjects(record)) >= 5 and len(accepted) >= 40:
                break
            await asyncio.sleep(0.05)
        gateway.kill()  # mid-send, no chance to clean up
        await gateway.stop()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*clients), 20)

        delivered_before = sink_subjects(record)
        assert accepted and len(delivered_before) < len(accepted), "the kill must land mid-send"
        conn = await asyncpg.connect(database_url)
        try:
            committed = {r["subject"] for r in await conn.fetch("SELECT subject FROM messages")}
            assert set(accepted) <= committed  # every 250 was durable
            gateway = await start_gateway(*flags)
            for _ in range(600):
                pending = await conn.fetchval(
                    "SELECT count(*) FROM deliveries WHERE status NOT IN ('sent', 'failed')"
                )
                if pending == 0:
                    break
                await asyncio.sleep(0.1)
        finally:
            await conn.close()
        for _ in range(100):
            if set(accepted) <= sink_subjects(record):
                break
            await asyncio.sleep(0.05)
        missing = set(accepted) - sink_subjects(record)
        assert not missing, (
            f"{len(missing)} messages got 250 and never arrived: {sorted(missing)[:5]}"
        )
    finally:
        await gateway.stop()
        await sink.stop()
