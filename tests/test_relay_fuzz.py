"""A small SMTP session fuzzer: hostile sessions, while an authenticated client keeps sending.

Sessions are generated from a fixed seed (``MSGGATE_FUZZ_SEED`` picks another): malformed and
unknown commands, NULs, 8-bit and control bytes, bare LF and CR, over-long lines, several
commands in one write (pipelining garbage), and messages with bad MIME, NULs, 8-bit garbage and
huge headers. The relay must answer every command (no hang, no silent close), never with a 4xx
for what can never be accepted (451 is its "unexpected error" answer), never with exception
text or control bytes, and log no error; meanwhile the authenticated client's mail is
committed, every message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re

from tests.relay_support import RawSmtp, message_ids, start_relay

SEED = int(os.environ.get("MSGGATE_FUZZ_SEED", "20261203"))
SESSIONS = 36
WORKERS = 3
HOSTILE = "127.0.0.2"

# 4xx replies a hostile session may earn: closing for its limits (421), auth throttling (454),
# too many recipients (452). Anything else temporary, 451 above all, is a bug.
TEMPORARY_ALLOWED = (b"421 ", b"452 ", b"454 ")
CLOSING = (b"421 ", b"221 ", b"502 5.5.1 Too many unrecognized")
LEAKS = re.compile(rb"Traceback|Error: \(|Exception|asyncpg|\.py\b")

VERBS = [b"HELO", b"EHLO", b"MAIL FROM:", b"RCPT TO:", b"RSET", b"NOOP", b"VRFY", b"HELP"]
VERBS += [b"EXPN", b"XCLIENT", b"mail from:", b"rcpt to:", b"BDAT", b"ETRN", b"AUTH"]
ARGS = [
    b"<app@example.com>",
    b"<ops@example.com>",
    b"<>",
    b"<a\x00b@example.com>",
    b"<\xff\xfe@example.com>",
    b"a@b@c",
    b"<" + b"x" * 300 + b"@example.com>",
    b"<@route.example:ops@example.com>",
    b"<ops@[127.0.0.1]>",
    b"<ops@example.com> SIZE=abc",
    b"<ops@example.com> BODY=9BIT",
    b"<ops@example.com> SMTPUTF8=1",
    b"client.example.com",
    b"\xe7\x9b\x91\xe6\x8e\xa7.example.com",
    b"PLAIN !!notbase64!!",
    b"CRAM-MD5 abc",
    b"",
]


def mutate(rng: random.Random, line: bytes) -> bytes:
    """One hostile change to a command line."""
    choice = rng.randrange(7)
    at = rng.randrange(len(line) + 1)
    if choice == 0:
        return line[:at] + b"\x00" + line[at:]
    if choice == 1:
        return line[:at] + bytes([rng.randrange(0x80, 0x100)]) + line[at:]
    if choice == 2:
        return line[:at] + bytes([rng.choice([1, 8, 13, 27, 127])]) + line[at:]
    if choice == 3:
        return line + b"A" * rng.choice([500, 1200, 5000])  # over the 512-byte command limit
    if choice == 4:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))).replace(b"\n", b"")
    if choice == 5:
        return line.lower()
    return line


def command(rng: random.Random) -> bytes:
    """A command line (without its line end) whose reply is one reply, never a prompt."""
    line = rng.choice(VERBS)
    arg = rng.choice(ARGS)
    if line == b"AUTH" and not arg.startswith((b"PLAIN !", b"CRAM")):
        arg = b"PLAIN !!notbase64!!"  # a bare AUTH would wait for a challenge response
    if arg:
        line += arg if line.endswith(b":") else b" " + arg
    if rng.random() < 0.6:
        line = mutate(rng, line)
    return line.replace(b"\n", b"")


def nested(rng: random.Random, depth: int) -> bytes:
    parts = [b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"]
    for i in range(depth):
        parts.append(b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1))
    parts.append(b"--b%d\r\n\r\ninnermost\r\n" % depth)
    return b"Subject: nested\r\n" + b"".join(parts)


def message(rng: random.Random) -> bytes:
    """A message to send after DATA: some well-formed, most of them broken in one way."""
    kind = rng.randrange(10)
    if kind == 0:
        body = b"Subject: ok\r\nFrom: app@example.com\r\n\r\nall fine\r\n"
    elif kind == 1:
        body = b"Subject: a\x00b\r\n\r\nNUL in the subject\r\n"
    elif kind == 2:
        body = b"Subject: \xff\xfe\xfd garbage \x81\r\nMessage-ID: <\xc0\xc1@x>\r\n\r\n8-bit\r\n"
    elif kind == 3:
        body = b"Subject: lf\nTo: ops@example.com\n\nbare\nline\rends\n"
    elif kind == 4:
        body = b"Subject: big\r\n" + b" folded-header-line-of-some-length\r\n" * 9000  # 324 kB
        body += b"\r\nbody\r\n"
    elif kind == 5:
        body = nested(rng, rng.choice([5, 45, 99, 300, 1500]))
    elif kind == 6:
        body = (
            b"Subject: =?utf-8?B?AAAA?= =?x-unknown?Q?=FF=00?= =?gb2312?B?!!!?=\r\n"
            b'Content-Type: text/plain; charset="\xff\x00bogus"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\n@@@not base64@@@\r\n"
        )
    elif kind == 7:
        body = (
            b'Subject: broken multipart\r\nContent-Type: multipart/mixed; boundary=""\r\n\r\n'
            b"--\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>\x00</p>\r\n--x--\r\n"
            b"Content-Disposition: attachment; filename*=utf-8''%00%ff.txt\r\n"
        )
    elif kind == 8:
        body = b"Subject: text NUL\r\n\r\nbody with a \x00 inside\r\n"
    else:
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3000)))
    # transparency: a line starting with "." gets another, as any client would send it
    body = re.sub(rb"(^|\n)\.", rb"\1..", body)
    return body.rstrip(b"\r\n") + b"\r\n."


def check(reply: bytes, what: bytes) -> None:
    assert reply, f"closed without a reply to {what[:80]!r}"
    assert re.match(rb"^[2-5]\d\d[ -]", reply), (what[:80], reply)
    lines = reply.split(b"\r\n")
    assert lines[-1] == b"", reply
    for line in lines[:-1]:
        assert not re.search(rb"[\x00-\x1f\x7f]", line), (what[:80], reply)
    reply.decode("utf-8")  # valid UTF-8 throughout
    assert not LEAKS.search(reply), (what[:80], reply)
    if reply[:1] == b"4":
        assert reply.startswith(TEMPORARY_ALLOWED), (what[:80], reply)


async def hostile_session(relay, rng: random.Random) -> list[bytes]:
    """One fuzzed session; the replies it got."""
    smtp = await RawSmtp.connect(relay.port, HOSTILE)
    replies = [await smtp.reply()]
    assert replies[0].startswith(b"220"), replies
    try:
        # in the access list, so that MAIL, RCPT and DATA get as far as they can
        assert (await smtp.command(b"EHLO fuzz.example.com")).startswith(b"250")
        for _ in range(rng.randrange(4, 12)):
            step = rng.randrange(4)
            if step == 0:  # pipelining garbage: several commands in one write
                lines = [command(rng) for _ in range(rng.randrange(2, 6))]
                ends = [rng.choice([b"\r\n", b"\r\n", b"\n"]) for _ in lines]
                smtp.writer.write(
                    b"".join(line + end for line, end in zip(lines, ends, strict=True))
                )
                for line in lines:
                    reply = await smtp.reply()
                    check(reply, line)
                    replies.append(reply)
                    if reply.startswith(CLOSING):
                        return replies
            elif step == 1:
                line = command(rng)
                reply = await smtp.command(line)
                check(reply, line)
                replies.append(reply)
                if reply.startswith(CLOSING):
                    return replies
            else:  # a transaction with a (mostly) broken message
                for line in (b"RSET", b"MAIL FROM:<app@example.com>", b"RCPT TO:<ops@example.com>"):
                    reply = await smtp.command(line)
                    check(reply, line)
                    assert reply.startswith(b"250"), (line, reply)
                assert (await smtp.command(b"DATA")).startswith(b"354")
                data = message(rng)
                reply = await smtp.command(data, timeout=60)
                check(reply, data)
                assert reply.startswith((b"250 ", b"5")), (data[:200], reply)
                replies.append(reply)
        reply = await smtp.command(b"QUIT")
        check(reply, b"QUIT")
        return replies
    finally:
        smtp.close()


async def test_fuzzed_sessions_get_answers_and_an_authenticated_client_is_served(
    make_database, make_gateway, tmp_path, caplog
):
    caplog.set_level(logging.WARNING)
    database = await make_database()  # its own: an access rule applies to every gateway on it
    relay = await start_relay(make_gateway, tmp_path, database_url=database)
    for name, cidr in (("tests", "127.0.0.1"), ("fuzzer", HOSTILE)):
        status, _ = await relay.gw.post("/api/v1/access-rules", {"name": name, "cidr": cidr})
        assert status == 201
    user = await relay.user()
    rng = random.Random(SEED)
    seeds = [rng.randrange(2**32) for _ in range(SESSIONS)]
    fuzzing = True
    committed: list[str] = []

    async def worker(mine: list[int]) -> list[bytes]:
        got = []
        for seed in mine:
            got += await hostile_session(relay, random.Random(seed))
        return got

    async def good_client() -> None:
        n = 0
        while fuzzing or n < 3:
            n += 1
            raw = f"Subject: heartbeat {n}\r\nFrom: app@example.com\r\n\r\nstill here\r\n"
            code, reply = await relay.send(raw, ["ops@example.com"], user=user)
            assert code == 250, reply
            committed.extend(message_ids(reply))

    client = asyncio.create_task(good_client())
    try:
        results = await asyncio.gather(*(worker(seeds[i::WORKERS]) for i in range(WORKERS)))
    finally:
        fuzzing = False
    await asyncio.wait_for(client, 120)
    replies = [r for got in results for r in got]
    codes = {r[:3] for r in replies}
    assert len(replies) > SESSIONS * 4 and {b"250", b"554"} <= codes, sorted(codes)
    for message_id in committed:  # every message of the good client is in the store
        status, body = await relay.gw.get(f"/api/v1/messages/{message_id}")
        assert status == 200, body
    assert len(committed) >= 3
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
