"""Helpers for the SMTP relay tests: a gateway with its relay, a CA for STARTTLS, SMTP clients.

The relay runs on the test's event loop, so blocking ``smtplib`` calls go through
``asyncio.to_thread``; aiosmtplib is used as is.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import smtplib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosmtplib

from tests.gateway_fixtures import RunningGateway, unique

RELAY_DOMAIN = "relay.test"
PASSWORD = "correct horse battery"


class RelayCA:
    """A throwaway CA and a certificate for 127.0.0.1, written where the relay reads it."""

    def __init__(self, folder: Path) -> None:
        import trustme

        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.cert_file = folder / "relay-cert.pem"
        self.key_file = folder / "relay-key.pem"
        cert.cert_chain_pems[0].write_to_path(str(self.cert_file))
        cert.private_key_pem.write_to_path(str(self.key_file))

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@dataclass
class Relay:
    """A running gateway with its SMTP relay."""

    gw: RunningGateway
    ca: RelayCA
    account: str  # the relay's default e-mail account (a sandbox unless told otherwise)

    @property
    def port(self) -> int:
        relay = self.gw.services.relay
        assert relay is not None and relay.listener is not None
        return relay.listener.port

    async def user(self, password: str = PASSWORD) -> str:
        name = unique("app") + "@example.com"
        status, body = await self.gw.post(
            "/api/v1/relay-users", {"username": name, "password": password}
        )
        assert status == 201, body
        return name

    @contextlib.asynccontextmanager
    async def session(
        self, tls: bool = True, source: str | None = None
    ) -> AsyncIterator[aiosmtplib.SMTP]:
        """A connected client (STARTTLS done unless ``tls`` is false) that has sent EHLO;
        ``source``: the client's own address (another loopback address, 127.x.y.z)."""
        smtp = aiosmtplib.SMTP(
            hostname="127.0.0.1",
            port=self.port,
            tls_context=self.ca.client_context(),
            start_tls=tls,
            timeout=30 if source else 20,
            source_address=(source, 0) if source else None,
        )
        async with smtp:
            await smtp.ehlo()
            yield smtp

    async def send(
        self,
        data: bytes | str,
        rcpts: list[str],
        *,
        user: str | None,
        sender: str = "app@example.com",
    ) -> tuple[int, str]:
        """STARTTLS, AUTH as ``user`` (if given), one message; the reply to the final dot."""
        async with self.session() as smtp:
            if user:
                await smtp.login(user, PASSWORD)
            if isinstance(data, str):
                data = data.encode()
            await smtp.mail(sender)
            for rcpt in rcpts:
                await smtp.rcpt(rcpt)
            reply = await smtp.data(data)
            return reply.code, reply.message

    async def sandbox(self, account: str | None = None) -> list[dict]:
        status, body = await self.gw.get(
            "/api/v1/sandbox/messages", params={"account": account or self.account}
        )
        assert status == 200, body
        return body["items"]


def message_ids(reply: str) -> list[str]:
    """The gateway message ids in a "250 2.0.0 Ok: queued as <id> <id>" reply."""
    return reply.split("queued as", 1)[1].split()


async def start_relay(
    make_gateway: Callable[..., Any],
    tmp_path: Path,
    *,
    account: str | None = None,
    sandbox: bool = True,
    **settings: Any,
) -> Relay:
    """A gateway whose relay presents a test CA's certificate; a sandbox default account."""
    ca = RelayCA(tmp_path)
    name = account or unique("relay-mail")
    settings.setdefault("relay_default_account", name)
    settings.setdefault("relay_domain", RELAY_DOMAIN)
    gw = await make_gateway(
        smtp_tls_cert=str(ca.cert_file), smtp_tls_key=str(ca.key_file), **settings
    )
    if sandbox and account is None:
        status, body = await gw.post(
            "/api/v1/accounts", {"channel": "email", "name": name, "sandbox": True}
        )
        assert status == 201, body
    return Relay(gw, ca, name)


def smtplib_send(
    port: int,
    context: ssl.SSLContext,
    user: str | None,
    password: str,
    sender: str,
    rcpts: list[str],
    data: bytes,
) -> dict:
    """Blocking: STARTTLS, AUTH, sendmail with smtplib; returns refused recipients (run it in a
    thread)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        smtp.starttls(context=context)
        if user:
            smtp.login(user, password)
        return smtp.sendmail(sender, rcpts, data)


async def smtplib_send_async(relay: Relay, user: str | None, rcpts: list[str], data: bytes) -> dict:
    return await asyncio.to_thread(
        smtplib_send,
        relay.port,
        relay.ca.client_context(),
        user,
        PASSWORD,
        "legacy-app@example.com",
        rcpts,
        data,
    )


class RawSmtp:
    """An SMTP client that sends exactly the bytes it is given, for malformed and hostile input.

    ``source`` picks the client's own address (any 127.x.y.z on Linux), so that tests of the
    per-address limits can be several clients at once.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, source: str = "127.0.0.1") -> RawSmtp:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(source, 0), limit=2**20
        )
        return cls(reader, writer)

    async def reply(self, timeout: float = 30) -> bytes:
        """One reply, all its lines; b"" if the server closed the connection."""
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
            if not line:
                return b"".join(lines)
            lines.append(line)
            if line[3:4] != b"-":
                return b"".join(lines)

    async def command(self, line: bytes, timeout: float = 30) -> bytes:
        self.writer.write(line + b"\r\n")
        return await self.reply(timeout)

    async def login(self, user: str, password: str = PASSWORD) -> None:
        """EHLO and AUTH PLAIN in the clear (the relay must allow plain AUTH)."""
        assert (await self.command(b"EHLO raw.example.com")).startswith(b"250")
        blob = base64.b64encode(f"\0{user}\0{password}".encode())
        assert (await self.command(b"AUTH PLAIN " + blob)).startswith(b"235")

    async def closed(self, timeout: float = 30) -> bool:
        """True once the server has closed the connection (whatever it said before)."""
        while await asyncio.wait_for(self.reader.read(65536), timeout):
            pass
        return True

    def close(self) -> None:
        self.writer.close()
