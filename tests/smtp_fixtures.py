"""Real SMTP servers for tests, benchmarks and crash tests: aiosmtpd in its own thread.

``SmtpTestServer`` runs an aiosmtpd ``Controller`` on 127.0.0.1 and a free port, with optional
STARTTLS or implicit TLS, AUTH PLAIN/LOGIN, a per-message delay, scripted rejections at MAIL and
RCPT, and a size limit. It records every message it accepts. As a pytest plugin this module
provides the ``smtp_ca`` (session) and ``smtp_server`` (factory) fixtures; run as a script
(``python -m tests.smtp_fixtures --port 2525 --record sink.jsonl``) it is a sink that appends one
JSON line per accepted message, for tests that need the server in another process.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import itertools
import json
import logging
import signal
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import DATA_SIZE_DEFAULT, SMTP, AuthResult, Envelope, LoginPassword, Session

log = logging.getLogger(__name__)

TlsMode = Literal["none", "starttls", "tls"]
DEFAULT_FROM = "Ops <ops@example.com>"


class SmtpCA:
    """A throwaway CA (trustme) and a server certificate for 127.0.0.1, ::1 and localhost."""

    def __init__(self) -> None:
        import trustme  # only tests and benches need it, so import it only here

        self._ca = trustme.CA()
        self._server_cert = self._ca.issue_cert("127.0.0.1", "::1", "localhost")
        self.pem: str = self._ca.cert_pem.bytes().decode("ascii")
        """The CA certificate in PEM: what a client adds to its trust store (``ca_cert``)."""

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate for 127.0.0.1 / localhost."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._server_cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client-side context that trusts this CA."""
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted: envelope, raw bytes and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage
    queue_id: str
    login: str | None  # the AUTH user, if the client authenticated


class _Handler:
    """aiosmtpd handler hooks: scripted rejections, delay, recording."""

    def __init__(self, server: SmtpTestServer) -> None:
        self.server = server

    async def handle_MAIL(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        rejected = self.server.reject_from.get(address.lower())
        if rejected:
            return f"{rejected[0]} {rejected[1]}"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        rejected = self.server.reject.get(address.lower())
        if rejected:
            return f"{rejected[0]} {rejected[1]}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_EHLO(
        self, smtp: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # this hook form must do it itself
        if self.server.advertise_auth:
            return responses
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        if self.server.delay:
            await asyncio.sleep(self.server.delay)
        data = envelope.original_content or b""
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        queue_id = self.server._record(envelope.mail_from or "", envelope.rcpt_tos, data, login)
        if self.server.queue_ids:
            return f"250 2.0.0 Ok: queued as {queue_id}"
        return "250 OK"

    async def handle_exception(self, error: Exception) -> str:
        log.warning("test SMTP server error: %r", error)
        return "451 4.3.0 Local error"  # aiosmtpd's default would echo the exception text


class _Controller(Controller):
    """A Controller that tells its SmtpTestServer about every connection (one SMTP each)."""

    def __init__(self, owner: SmtpTestServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._owner = owner

    def factory(self) -> SMTP:
        with warnings.catch_warnings():  # AUTH without STARTTLS is what the test asked for
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS")
            smtp = super().factory()
        self._owner._connected(smtp)
        return smtp


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class SmtpTestServer:
    """A real SMTP server in a thread; ``start()`` it, send to ``host``/``port``, ``stop()`` it.

    Options: ``tls`` ("none" | "starttls" | "tls" = implicit TLS); ``users`` {name: password}
    (AUTH PLAIN/LOGIN then required; over TLS only, except with tls "none"); ``delay`` seconds
    before answering each DATA; ``reject`` {recipient: (code, text)} answered at RCPT;
    ``reject_from`` {sender: (code, text)} answered at MAIL; ``size_limit`` bytes, advertised
    as SIZE (aiosmtpd's 32 MiB if not given); ``ca`` an SmtpCA (one is made when TLS needs
    it); ``queue_ids`` (answer DATA with "queued as <id>", else a plain "OK");
    ``advertise_auth`` (False hides AUTH from EHLO, as a relay-only server would);
    ``on_message`` called (in the server thread) with each ReceivedMessage.
    """

    def __init__(
        self,
        *,
        tls: TlsMode = "none",
        users: Mapping[str, str] | None = None,
        delay: float = 0.0,
        reject: Mapping[str, tuple[int, str]] | None = None,
        reject_from: Mapping[str, tuple[int, str]] | None = None,
        size_limit: int | None = None,
        ca: SmtpCA | None = None,
        queue_ids: bool = True,
        advertise_auth: bool = True,
        on_message: Callable[[ReceivedMessage], None] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if tls not in ("none", "starttls", "tls"):
            raise ValueError(f"tls must be none, starttls or tls, not {tls!r}")
        self.tls: TlsMode = tls
        self.users = dict(users or {})
        self.delay = delay
        self.reject = {k.lower(): v for k, v in (reject or {}).items()}
        self.reject_from = {k.lower(): v for k, v in (reject_from or {}).items()}
        self.size_limit = size_limit
        self.ca = ca if ca is not None or tls == "none" else SmtpCA()
        self.queue_ids = queue_ids
        self.advertise_auth = advertise_auth
        self.on_message = on_message
        self.host = host
        self.port = port
        self._requested_port = port
        self._controller: _Controller | None = None
        self._cond = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._sessions: list[SMTP] = []
        self._connections = 0
        self._ids = itertools.count(1)

    # --- life cycle -------------------------------------------------------------------------

    def _make_controller(self, port: int) -> _Controller:
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": port,
            "server_hostname": "mx.test.invalid",  # skips aiosmtpd's slow getfqdn()
            "data_size_limit": self.size_limit or DATA_SIZE_DEFAULT,
            "ready_timeout": 10.0,
        }
        if self.tls != "none":
            assert self.ca is not None
            if self.tls == "tls":
                kwargs["ssl_context"] = self.ca.server_context()
            else:
                kwargs["tls_context"] = self.ca.server_context()
        if self.users:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            # aiosmtpd only counts STARTTLS as TLS; an implicit-TLS session is TLS all along
            kwargs["auth_require_tls"] = self.tls == "starttls"
        return _Controller(self, _Handler(self), **kwargs)

    def start(self) -> SmtpTestServer:
        """Listen (on a free port unless one was given) and return self once it answers."""
        if self._controller is not None:
            raise RuntimeError("already started")
        for attempt in range(5):
            port = self._requested_port or _free_port(self.host)
            controller = self._make_controller(port)
            try:
                controller.start()
            except OSError:  # the free port was taken in between: pick another
                if self._requested_port or attempt == 4:
                    raise
                continue
            break
        with self._cond:
            self._connections = 0  # the controller's own readiness probe does not count
        self._controller = controller
        self.port = port
        return self

    def stop(self) -> None:
        """Drop client connections and stop the server thread (idempotent)."""
        controller, self._controller = self._controller, None
        if controller is None:
            return
        self.drop_connections(controller)
        controller.stop()

    def __enter__(self) -> SmtpTestServer:
        return self.start() if self._controller is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def drop_connections(self, controller: Controller | None = None) -> None:
        """Close every client connection from the server side, as an idle timeout would."""
        controller = controller or self._controller
        if controller is None:
            return
        with self._cond:
            sessions, self._sessions = self._sessions, []
        done = threading.Event()

        def close_all() -> None:
            for smtp in sessions:
                if smtp.transport is not None:
                    smtp.transport.close()
            done.set()

        controller.loop.call_soon_threadsafe(close_all)
        done.wait(5)

    # --- what the server saw -----------------------------------------------------------------

    def _connected(self, smtp: SMTP) -> None:
        with self._cond:
            self._connections += 1
            self._sessions = [s for s in self._sessions if s.transport is not None]
            self._sessions.append(smtp)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            if user in self.users and self.users[user] == password:
                return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)

    def _record(self, mail_from: str, rcpt_tos: list[str], data: bytes, login: str | None) -> str:
        queue_id = f"Q{next(self._ids):06d}"
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        received = ReceivedMessage(mail_from, tuple(rcpt_tos), data, parsed, queue_id, login)
        with self._cond:
            self._messages.append(received)
            self._cond.notify_all()
        if self.on_message is not None:
            self.on_message(received)
        return queue_id

    @property
    def messages(self) -> list[ReceivedMessage]:
        """Every message accepted so far, in arrival order (a copy)."""
        with self._cond:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """How many client connections the server has accepted since start."""
        with self._cond:
            return self._connections

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now."""
        with self._cond:
            return sum(1 for smtp in self._sessions if smtp.transport is not None)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Block until ``count`` messages have arrived; return them (TimeoutError if not)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"{len(self._messages)} of {count} messages after {timeout}s")
            return list(self._messages)

    async def await_messages(self, count: int, timeout: float = 10.0) -> list[ReceivedMessage]:
        """``wait_for`` without blocking the event loop (the sender may share it)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.messages)} of {count} messages after {timeout}s")
            await asyncio.sleep(0.01)
        return self.messages

    def account_config(self, **overrides: Any) -> dict[str, Any]:
        """An e-mail account config (the ``email`` channel's wire form) for this server."""
        config: dict[str, Any] = {"host": self.host, "port": self.port, "tls": self.tls}
        config["from"] = DEFAULT_FROM
        if self.ca is not None and self.tls != "none":
            config["ca_cert"] = self.ca.pem
        if self.users:
            config["username"], config["password"] = next(iter(self.users.items()))
            config["allow_insecure_auth"] = self.tls == "none"
        config.update(overrides)
        return config


# --- pytest fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smtp_ca() -> SmtpCA:
    """One CA for the whole session; ``smtp_ca.pem`` is what clients must trust."""
    return SmtpCA()


@pytest.fixture
def smtp_server(smtp_ca: SmtpCA) -> Iterator[Callable[..., SmtpTestServer]]:
    """A factory: ``smtp_server(tls=..., users=...)`` starts a server; all stop at teardown."""
    servers: list[SmtpTestServer] = []

    def make(**options: Any) -> SmtpTestServer:
        options.setdefault("ca", smtp_ca)
        server = SmtpTestServer(**options).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


# --- a sink in its own process ---------------------------------------------------------------


def _json_line_writer(path: str) -> Callable[[ReceivedMessage], None]:
    lock = threading.Lock()

    def write(received: ReceivedMessage) -> None:
        line = {
            "from": received.mail_from,
            "to": list(received.rcpt_tos),
            "message_id": received.message["Message-ID"],
            "subject": received.message["Subject"],
            "queue_id": received.queue_id,
        }
        with lock, open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            out.flush()

    return write


def main(argv: list[str] | None = None) -> None:
    """Run a sink until SIGTERM/SIGINT; print one JSON line with host, port (and CA file)."""
    parser = argparse.ArgumentParser(description="msggate test SMTP sink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each DATA reply")
    parser.add_argument("--tls", choices=["none", "starttls", "tls"], default="none")
    parser.add_argument("--record", help="append one JSON line per accepted message here")
    parser.add_argument("--user", action="append", default=[], help="NAME:PASSWORD for AUTH")
    parser.add_argument("--ca-out", help="write the CA certificate (PEM) here, with --tls")
    args = parser.parse_args(argv)
    users = dict(user.split(":", 1) for user in args.user)
    server = SmtpTestServer(
        tls=args.tls,
        users=users,
        delay=args.delay,
        on_message=_json_line_writer(args.record) if args.record else None,
        host=args.host,
        port=args.port,
    )
    if args.ca_out and server.ca is not None:
        with open(args.ca_out, "w", encoding="ascii") as out:
            out.write(server.ca.pem)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with server:
        print(json.dumps({"host": server.host, "port": server.port, "tls": server.tls}), flush=True)
        while not stopping.wait(0.5):
            pass


if __name__ == "__main__":
    main()
