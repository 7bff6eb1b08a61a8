"""Memory budget: body sizes refused before they are read, large bodies (API and SMTP) taking
turns within one budget, SMTP DATA spooled, attachments left out of the parse, and nothing
keeping a large body alive once it is committed. bench/memory.py measures the RSS itself."""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import gc
import io
import json
import os
import random
import tracemalloc
import uuid
import weakref
from urllib.parse import urlsplit

import aiosmtplib
import pytest

from gateway.batching import Batcher
from gateway.relay import mime
from gateway.relay.spool import _Writer, receive
from tests.gateway_fixtures import unique
from tests.relay_support import PASSWORD, message_ids, start_relay

MiB = 1024 * 1024
DEFAULT_MAX_BODY = 8 * MiB  # MSGGATE_HTTP_MAX_BODY_SIZE's default, as README says


def message_json(account: str, size: int, **extra: object) -> bytes:
    """A valid message to ``account`` whose JSON is ``size`` bytes (the HTML fills it)."""
    fields = {
        "channel": "email",
        "account": account,
        "recipients": [unique("mem") + "@example.com"],
        "subject": "memory budget",
        **extra,
        "html": "",
    }
    head = json.dumps(fields).encode()[:-2]
    return head + b"x" * (size - len(head) - 2) + b'"}'


async def raw_post(
    gw, length: int, first: bytes, extra: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A POST /api/v1/messages declaring ``length`` bytes of which only ``first`` is sent."""
    url = urlsplit(gw.url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    writer.write(
        (
            "POST /api/v1/messages HTTP/1.1\r\nHost: gateway\r\n"
            f"Authorization: Bearer {gw.api_key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n"
        ).encode()
        + first
    )
    await writer.drain()
    return reader, writer


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], dict]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    body = await asyncio.wait_for(reader.readexactly(int(headers["Content-Length"])), 30)
    return int(lines[0].split()[1]), headers, json.loads(body)


async def until(check, what: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"never: {what}"
        await asyncio.sleep(0.02)


# -- sizes ---------------------------------------------------------------------------------


async def test_declared_body_over_the_limit_is_413_json_before_the_body_is_sent(gateway):
    reader, writer = await raw_post(gateway, DEFAULT_MAX_BODY + 1, b"{")  # 1 byte of 8 MiB
    try:
        status, _, body = await read_response(reader)
    finally:
        writer.close()
    assert status == 413
    assert body["error"]["code"] == "too_large"
    assert str(DEFAULT_MAX_BODY) in body["error"]["message"]


async def test_a_client_waiting_for_100_continue_is_told_413_instead_when_too_large(gateway):
    expect = "Expect: 100-continue\r\n"
    reader, writer = await raw_post(gateway, DEFAULT_MAX_BODY + 1, b"", expect)
    try:
        status, _, body = await read_response(reader)  # not "100 Continue" first
    finally:
        writer.close()
    assert status == 413 and body["error"]["code"] == "too_large"
    reader, writer = await raw_post(gateway, 2, b"", expect)  # within the limit: go on
    try:
        line = await asyncio.wait_for(reader.readline(), 30)
    finally:
        writer.close()
    assert line.startswith(b"HTTP/1.1 100")


# -- one budget for large bodies -----------------------------------------------------------


async def test_large_bodies_take_turns_small_ones_never_wait_and_503_says_retry_after(
    make_gateway,
):
    gw = await make_gateway(dispatch=False, body_memory=MiB, body_wait_seconds=1)
    account = unique("mem-sandbox")
    await gw.create_account("email", account, sandbox=True)
    first = message_json(account, 700_000)
    reader, writer = await raw_post(gw, len(first), first[:1000])  # holds 700 KB of 1 MiB
    try:
        await until(lambda: gw.services.bodies.in_use > 0, "the first body holds the budget")
        second = message_json(account, 700_000)
        headers = {"Content-Type": "application/json"}
        async with gw.http.post("/api/v1/messages", data=second, headers=headers) as response:
            assert response.status == 503
            assert response.headers["Retry-After"].isdigit()
            assert (await response.json())["error"]["code"] == "busy"
        small = json.loads(message_json(account, 10_000))
        status, body = await gw.post("/api/v1/messages", small)  # while the first still holds
        assert status == 202, body
        assert gw.services.bodies.in_use > 0
        writer.write(first[1000:])
        status, _, body = await read_response(reader)
        assert status == 202, body
    finally:
        writer.close()
    async with gw.http.post("/api/v1/messages", data=second, headers=headers) as response:
        assert response.status == 202, await response.text()
    assert gw.services.bodies.in_use == 0


async def test_a_large_mail_shares_the_budget_with_the_api_451_then_accepted_whole(
    make_gateway, tmp_path
):
    relay = await start_relay(make_gateway, tmp_path, body_memory=MiB, body_wait_seconds=1)
    user = await relay.user()
    gw = relay.gw
    held = message_json(relay.account, 900_000)
    reader, writer = await raw_post(gw, len(held), held[:1000])
    lines = b"".join(b"line %06d " % n + b"y" * 60 + b"\r\n" for n in range(5000))
    mail = (
        b"From: <app@example.com>\r\nTo: <ops@example.com>\r\nSubject: large\r\n"
        b"Message-ID: <" + unique("large").encode() + b"@example.com>\r\n"
        b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\n" + lines
    )
    try:
        await until(lambda: gw.services.bodies.in_use > 0, "the API body holds the budget")
        async with relay.session() as smtp:
            await smtp.login(user, PASSWORD)
            await smtp.mail("app@example.com")
            await smtp.rcpt("ops@example.com")
            with pytest.raises(aiosmtplib.SMTPDataError) as busy:
                await smtp.data(mail)
        assert busy.value.code == 451 and "4.3.1" in busy.value.message
        writer.write(held[1000:])
        assert (await read_response(reader))[0] == 202
    finally:
        writer.close()
    code, reply = await relay.send(mail, ["ops@example.com"], user=user)
    assert code == 250, reply
    [message_id] = message_ids(reply)
    raws = await gw.services.relay.store.raw_many([uuid.UUID(message_id)])
    assert raws[uuid.UUID(message_id)].endswith(mail)  # only a Received field added on top


# -- SMTP DATA spooled ---------------------------------------------------------------------


async def test_spooled_data_is_unstuffed_byte_exact_and_a_pipelined_quit_is_answered(
    make_gateway, tmp_path
):
    relay = await start_relay(make_gateway, tmp_path, smtp_allow_plain_auth=True)
    user = await relay.user()
    login = base64.b64encode(f"\0{user}\0{PASSWORD}".encode())
    mid = unique("spool")
    # over 1 MiB (it goes to disk), with lines a client must dot-stuff, "." alone among them
    body_lines = [b".starts with a dot", b".", b"..two dots", b"", b"\rcarriage return first"]
    body_lines += [b"x" * 998] * 1200 + [b"last line"]
    original = (
        b"From: <app@example.com>\r\nTo: <ops@example.com>\r\nSubject: spooled\r\n"
        b"Message-ID: <" + mid.encode() + b"@example.com>\r\n"
        b"Date: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\n" + b"\r\n".join(body_lines) + b"\r\n"
    )
    stuffed = b"\r\n".join(b"." + x if x.startswith(b".") else x for x in original.split(b"\r\n"))
    reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)

    async def reply() -> bytes:
        while True:
            line = await asyncio.wait_for(reader.readline(), 30)
            if line[3:4] != b"-":
                return line

    try:
        assert (await reply()).startswith(b"220")
        for command in (
            b"EHLO client.test",
            b"AUTH PLAIN " + login,
            b"MAIL FROM:<app@example.com>",
            b"RCPT TO:<ops@example.com>",
        ):
            writer.write(command + b"\r\n")
            assert (await reply())[:1] == b"2", command
        writer.write(b"DATA\r\n")
        assert (await reply()).startswith(b"354")
        writer.write(stuffed + b".\r\nQUIT\r\n")  # the QUIT pipelined after the final dot
        queued = await reply()
        assert queued.startswith(b"250"), queued
        assert (await reply()).startswith(b"221")
    finally:
        writer.close()
    [message_id] = message_ids(queued.decode())
    raws = await relay.gw.services.relay.store.raw_many([uuid.UUID(message_id)])
    assert raws[uuid.UUID(message_id)].endswith(original)


async def test_data_of_only_the_final_dot_is_answered_not_waited_on(make_gateway, tmp_path):
    relay = await start_relay(make_gateway, tmp_path)
    user = await relay.user()
    async with relay.session() as smtp:
        await smtp.login(user, PASSWORD)
        await smtp.mail("app@example.com")
        await smtp.rcpt("ops@example.com")
        assert (await smtp.execute_command(b"DATA")).code == 354
        response = await smtp.execute_command(b".")  # nothing before the final dot
        assert response.code == 250, response  # an empty message, not a wait for more
        assert (await smtp.noop()).code == 250  # the session still answers


async def test_the_spool_reader_finds_the_end_and_unstuffs_however_the_bytes_arrive():
    rng = random.Random(9)
    pieces = [b".", b"..", b"\r", b"x" * 997, b"a.b", b"", b".\r", b"\n", b"\r\n."]
    edges = [[], [b""], [b".a", b""], [b"", b""], [b"."], [b"\ra", b"", b"."], [b"..", b""]]
    edges += [[b"\r"], [b"\r\r", b""], [b"x\r"], [b".\r"], [b"\n"]]
    for n in range(60):
        lines = (
            edges[n]
            if n < len(edges)
            else [b"".join(rng.choices(pieces, k=rng.randint(0, 4)))[:990] for _ in range(300)]
        )
        original = b"".join(line + b"\r\n" for line in lines)
        stuffed = original.replace(b"\r\n.", b"\r\n..")
        stuffed = b"." + stuffed if stuffed.startswith(b".") else stuffed
        stream = stuffed + b".\r\nQUIT\r\n"
        reader = asyncio.StreamReader(limit=1001)  # aiosmtpd's: its line length limit
        spool = io.BytesIO()
        writer = _Writer(spool, None, 1001)
        receiving = asyncio.ensure_future(receive(reader, writer))
        at = 0
        while at < len(stream):
            size = rng.choice([1, 2, 3, 5, 64, 1000, 5000])
            reader.feed_data(stream[at : at + size])
            at += size
            await asyncio.sleep(0)
        await asyncio.wait_for(receiving, 10)
        assert writer.problem is None
        assert spool.getvalue() == original
        assert await reader.read(100) == b"QUIT\r\n"  # a pipelined command stays unread


# -- the parse of large mail ---------------------------------------------------------------


def large_mail(attachment: bytes) -> bytes:
    encoded = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    return (
        b"From: =?utf-8?b?5byg5LiJ?= <app@example.com>\r\nTo: ops@example.com\r\n"
        b"Subject: =?gb2312?b?sai+rw==?=\r\nMessage-ID: <large@example.com>\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n"
        b'preamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary="inner"\r\n\r\n'
        b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nthe text\r\n"
        b"--inner\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>the html</p>\r\n"
        b"--inner--\r\n"
        b'--outer\r\nContent-Type: application/pdf; name="report.pdf"\r\n'
        b'Content-Disposition: attachment; filename="report.pdf"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"\r\n"
        b"--outer\r\nContent-Type: text/csv\r\nContent-Disposition: attachment; filename=a.csv\r\n"
        b"\r\n" + b"a,b,c\r\n" * 20_000 + b"\r\n"
        b"--outer--\r\nepilogue\r\n"
    )


def test_a_large_mail_parses_as_it_would_whole(monkeypatch):
    raw = large_mail(os.urandom(3 * MiB + 7))
    hollowed = mime.parse(raw)
    monkeypatch.setattr(mime, "HOLLOW_FROM", 2**40)  # the standard parse of all of it
    whole = mime.parse(raw)
    assert hollowed == whole
    assert [a.size for a in whole.attachments] == [3 * MiB + 7, 140_000]
    assert (whole.subject, whole.text, whole.html) == ("报警", "the text", "<p>the html</p>")


def random_part(rng: random.Random, depth: int = 0) -> bytes:
    """A MIME part: nested multiparts, text and HTML bodies, attachments of every encoding."""
    if depth < 3 and rng.random() < 0.6:
        boundary = f"b{depth}-{rng.randrange(10**6)}".encode()
        parts = [random_part(rng, depth + 1) for _ in range(rng.randint(1, 4))]
        body = b"".join(b"--" + boundary + b"\r\n" + p + b"\r\n" for p in parts)
        kind = rng.choice([b"mixed", b"alternative", b"related"])
        return (
            b"Content-Type: multipart/" + kind + b'; boundary="' + boundary + b'"\r\n\r\n'
            b"preamble\r\n" + body + b"--" + boundary + b"--\r\n"
        )
    n = rng.randint(70_000, 300_000) if rng.random() < 0.5 else rng.randint(10, 5000)
    crlf = lambda data: data.replace(b"\n", b"\r\n")  # noqa: E731
    return rng.choice(
        [
            lambda: (
                b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
                + ("你好 hello\r\n" * (n // 14)).encode()
            ),
            lambda: (
                b"Content-Type: text/html; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                + crlf(binascii.b2a_qp(("<p>你好</p>\n" * (n // 14)).encode()))
            ),
            lambda: (
                b"Content-Type: application/octet-stream\r\n"
                b'Content-Disposition: attachment; filename="f.bin"\r\n'
                b"Content-Transfer-Encoding: base64\r\n\r\n"
                + crlf(base64.encodebytes(rng.randbytes(n)))
            ),
            lambda: (
                b"Content-Type: text/plain; charset=utf-8\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n"
                + crlf(base64.encodebytes(("文本" * (n // 6)).encode()))
            ),
            lambda: (
                b'Content-Type: application/pdf; name="a.pdf"\r\n'
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                + crlf(binascii.b2a_qp(rng.randbytes(n // 4)))
            ),
            lambda: (
                b"Content-Type: text/csv\r\nContent-Disposition: attachment; filename=x.csv\r\n\r\n"
                + b"a,b\r\n" * (n // 5)
            ),
            lambda: (
                b"Content-Type: message/rfc822\r\n\r\nSubject: fwd\r\n\r\n"
                + b"forwarded line\r\n" * (n // 16)
            ),
        ]
    )()


def test_random_large_mails_parse_as_they_would_whole(monkeypatch):
    rng = random.Random(5)
    for _ in range(12):
        raw = b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n" + random_part(rng)
        monkeypatch.setattr(mime, "HOLLOW_FROM", 0)
        hollowed = mime.parse(raw)
        monkeypatch.setattr(mime, "HOLLOW_FROM", 2**40)
        assert hollowed == mime.parse(raw)


def test_parsing_a_large_mail_takes_less_memory_than_the_mail():
    raw = large_mail(os.urandom(4 * MiB))
    tracemalloc.start()
    try:
        mime.parse(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(raw) / 2, f"{peak} bytes to parse {len(raw)}"


# -- nothing keeps a committed body alive --------------------------------------------------


class Item:
    pass


async def test_an_idle_batcher_keeps_no_item_or_result_of_its_last_batch():
    async def flush(batch):
        return [Item() for _ in batch]

    batcher = Batcher(flush, flushers=1)
    item = Item()
    result = await batcher.submit(item)
    item_ref, result_ref = weakref.ref(item), weakref.ref(result)
    del item, result
    await asyncio.sleep(0.05)  # the flusher is back waiting for the next batch
    gc.collect()
    try:
        assert item_ref() is None and result_ref() is None
    finally:
        await batcher.close()


async def test_a_claim_takes_only_the_bodies_that_fit_but_always_one(make_gateway):
    gw = await make_gateway(dispatch=False)
    account = unique("mem-claim")
    await gw.create_account("email", account, sandbox=True)
    long_ago = dt.datetime(2001, 1, 1, tzinfo=dt.UTC).isoformat()  # before other tests' rows
    for _ in range(3):
        status, body = await gw.post(
            "/api/v1/messages", json.loads(message_json(account, 400_000, send_at=long_ago))
        )
        assert status == 202, body
    store, node = gw.services.store, unique("node")
    one = await store.claim(10, node, 60, max_bytes=1000)  # less than one body: still one
    two = await store.claim(10, node, 60, max_bytes=700_000)  # one fits, two would not
    rest = await store.claim(1, node, 60, max_bytes=2**40)
    assert [d.account_name for d in one] == [account]
    assert [d.account_name for d in two] == [account]
    assert rest[0].account_name == account
    assert all(399_000 < d.size < 400_000 for d in [*one, *two, rest[0]])
