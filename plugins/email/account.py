"""The e-mail sender account: where and how to submit mail over SMTP."""

from __future__ import annotations

import logging
import re
from email.headerregistry import Address
from typing import Annotated, ClassVar, Literal

import msgspec
from msgspec import Meta

from gateway.channel import AccountInvalid
from plugins.email.addresses import parse_mailbox

log = logging.getLogger(__name__)

IMPLICIT_TLS_PORT = 465


class InvalidEmailAccount(AccountInvalid, ValueError):
    """A malformed account config.

    Also a ValueError, so msgspec turns it into a ``ValidationError`` when decoding (with this
    exception, and its ``field``, as ``__cause__``), while direct construction raises it as is.
    """


class EmailAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An SMTP submission account.

    ``tls``: ``"tls"`` = implicit TLS (port 465), ``"starttls"`` = STARTTLS required (587),
    ``"none"`` = cleartext. With a ``password`` and no ``username`` the login name is the From
    address (the console form only asks for address and password). ``ca_cert`` is the PEM text of
    an extra CA to trust; ``verify_tls=False`` turns certificate checks off (lab servers only).
    """

    secret_fields: ClassVar[frozenset[str]] = frozenset({"password"})
    # where the password goes, and what protects it on the way (a changed one asks for it again)
    destination_fields: ClassVar[frozenset[str]] = frozenset(
        {"host", "port", "tls", "ca_cert", "verify_tls", "allow_insecure_auth"}
    )

    host: Annotated[str, Meta(min_length=1, max_length=253)]
    port: Annotated[int, Meta(ge=1, le=65535)]
    tls: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: str | None = None
    from_: Annotated[str, Meta(min_length=3, max_length=320)] = msgspec.field(name="from")
    ca_cert: str | None = None
    verify_tls: bool = True
    allow_insecure_auth: bool = False
    timeout: Annotated[float, Meta(gt=0, le=300)] = 10.0
    max_connections: Annotated[int, Meta(ge=1, le=100)] = 4

    def __post_init__(self) -> None:
        self.check()

    def __repr__(self) -> str:  # the password must never reach a log through a repr
        return (
            f"EmailAccount(host={self.host!r}, port={self.port}, tls={self.tls!r}, "
            f"username={self.username!r}, from_={self.from_!r})"
        )

    def check(self) -> None:
        """Raise InvalidEmailAccount (an AccountInvalid) naming the field that is wrong."""
        if not 1 <= self.port <= 65535:
            raise InvalidEmailAccount(f"port must be 1-65535, not {self.port}", field="port")
        if not self.host.strip() or any(c.isspace() for c in self.host):
            raise InvalidEmailAccount(f"invalid host name {self.host!r}", field="host")
        if self.port == IMPLICIT_TLS_PORT and self.tls == "starttls":
            raise InvalidEmailAccount(
                'port 465 uses implicit TLS: set tls to "tls" (STARTTLS is for port 587)',
                field="tls",
            )
        try:
            parse_mailbox(self.from_)
        except ValueError as exc:
            raise InvalidEmailAccount(
                f"invalid sender address: {exc} (expected e.g. 'Ops <ops@example.com>')",
                field="from",
            ) from None
        if self.ca_cert is not None and "-----BEGIN CERTIFICATE-----" not in self.ca_cert:
            raise InvalidEmailAccount("ca_cert must be PEM text (BEGIN CERTIFICATE)", "ca_cert")
        if self.username and not self.password:
            raise InvalidEmailAccount("a username needs a password", field="password")
        if self.password and self.tls == "none" and not self.allow_insecure_auth:
            raise InvalidEmailAccount(
                'refusing to send the password without TLS: use tls "starttls" or "tls" '
                "(or set allow_insecure_auth)",
                field="tls",
            )
        if self.timeout <= 0:
            raise InvalidEmailAccount("timeout must be positive", field="timeout")
        if self.max_connections < 1:
            raise InvalidEmailAccount("max_connections must be at least 1", field="max_connections")

    @property
    def sender(self) -> Address:
        """The From mailbox (display name and address)."""
        return parse_mailbox(self.from_)

    @property
    def login(self) -> str | None:
        """The AUTH user name, or None when the account does not authenticate."""
        if not self.password:
            return None
        return self.username or self.sender.addr_spec


def account_from(config: object) -> EmailAccount:
    """The EmailAccount in an AccountRef's ``config`` (decoding a plain mapping if need be)."""
    if isinstance(config, EmailAccount):
        return config
    try:
        return msgspec.convert(config, EmailAccount)
    except msgspec.ValidationError as exc:
        cause = exc.__cause__
        if isinstance(cause, AccountInvalid):
            field = cause.field
        else:  # msgspec names the path: "... - at `$.port`"
            match = re.search(r"at `\$\.(\w+)", str(exc))
            field = match.group(1) if match else None
        raise AccountInvalid(f"invalid e-mail account: {exc}", field=field) from None
