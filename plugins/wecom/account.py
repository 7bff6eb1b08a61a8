"""WeCom sender accounts: an application (corpid, corpsecret, agentid) and a group robot (key)."""

from __future__ import annotations

import logging
import re
from typing import Annotated, ClassVar, TypeVar
from urllib.parse import parse_qs, urlsplit

import msgspec
from msgspec import Meta

from gateway.channel import AccountInvalid

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://qyapi.weixin.qq.com"

_A = TypeVar("_A", bound=msgspec.Struct)

_KEY = re.compile(r"^[A-Za-z0-9-]{8,128}$")


class InvalidWecomAccount(AccountInvalid, ValueError):
    """A malformed account config (a ValueError too, so msgspec reports it while decoding)."""


def _check_endpoint(endpoint: str) -> str:
    """The endpoint without a trailing slash; raise if it is not an http(s) base URL."""
    try:
        parts = urlsplit(endpoint)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or any(c.isspace() for c in endpoint)
    ):
        raise InvalidWecomAccount(
            f"endpoint must be an http(s) base URL such as {DEFAULT_ENDPOINT}, not {endpoint!r}",
            field="endpoint",
        )
    return endpoint.rstrip("/")


class WecomAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A WeCom self-built application (企业微信自建应用) sending application messages.

    ``corpid`` is the company's ID (管理后台 → 我的企业), ``corpsecret`` the application's
    Secret and ``agentid`` its AgentId (an integer). ``endpoint`` is the API base URL (the real
    ``https://qyapi.weixin.qq.com`` or a fake); ``timeout`` bounds each call in seconds.
    """

    secret_fields: ClassVar[frozenset[str]] = frozenset({"corpsecret"})
    destination_fields: ClassVar[frozenset[str]] = frozenset({"endpoint"})

    corpid: Annotated[str, Meta(min_length=1, max_length=64)]
    corpsecret: Annotated[str, Meta(min_length=1, max_length=256)]
    agentid: Annotated[int, Meta(ge=0, le=2**31 - 1)]
    endpoint: str = DEFAULT_ENDPOINT
    timeout: Annotated[float, Meta(gt=0, le=60)] = 10.0

    def __post_init__(self) -> None:
        if not self.corpid.strip() or any(c.isspace() for c in self.corpid):
            raise InvalidWecomAccount(f"invalid corpid {self.corpid!r}", field="corpid")
        if self.corpsecret != self.corpsecret.strip():
            raise InvalidWecomAccount("corpsecret has leading or trailing spaces", "corpsecret")
        self.endpoint = _check_endpoint(self.endpoint)

    def __repr__(self) -> str:  # the secret must never reach a log through a repr
        return (
            f"WecomAccount(corpid={self.corpid!r}, agentid={self.agentid}, "
            f"endpoint={self.endpoint!r})"
        )


class WecomRobotAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A WeCom group robot (群机器人): the webhook ``key`` is its only credential.

    The whole webhook URL (``.../webhook/send?key=...``) is accepted too; its key is kept.
    """

    secret_fields: ClassVar[frozenset[str]] = frozenset({"key"})
    destination_fields: ClassVar[frozenset[str]] = frozenset({"endpoint"})

    key: Annotated[str, Meta(min_length=1, max_length=2048)]
    endpoint: str = DEFAULT_ENDPOINT
    timeout: Annotated[float, Meta(gt=0, le=60)] = 10.0

    def __post_init__(self) -> None:
        if self.key.startswith(("http://", "https://")):
            found = parse_qs(urlsplit(self.key).query).get("key")
            if not found:
                raise InvalidWecomAccount("the webhook URL has no key= parameter", field="key")
            self.key = found[0]
        if not _KEY.match(self.key):
            raise InvalidWecomAccount(
                "key must be the robot's webhook key (the value after key= in its webhook URL)",
                field="key",
            )
        self.endpoint = _check_endpoint(self.endpoint)

    def __repr__(self) -> str:
        return f"WecomRobotAccount(endpoint={self.endpoint!r})"


def account_from(config: object, account_type: type[_A]) -> _A:
    """The typed account in an AccountRef's ``config`` (decoding a plain mapping if need be)."""
    if isinstance(config, account_type):
        return config
    try:
        return msgspec.convert(config, account_type)
    except msgspec.ValidationError as exc:
        cause = exc.__cause__
        if isinstance(cause, AccountInvalid):
            raise AccountInvalid(cause.reason, cause.field) from None
        raise AccountInvalid(f"invalid WeCom account: {exc}") from None
