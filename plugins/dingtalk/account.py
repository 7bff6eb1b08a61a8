"""DingTalk sender accounts: a custom group robot, and an enterprise internal app."""

from __future__ import annotations

import hashlib
import logging
from typing import Annotated, ClassVar
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from gateway.channel import AccountInvalid

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://oapi.dingtalk.com"
ROBOT_PER_MINUTE = 20  # each robot may post 20 messages a minute (DingTalk's documented limit)


class InvalidDingTalkAccount(AccountInvalid, ValueError):
    """A malformed account config (a ValueError too, so msgspec reports it while decoding)."""


def _check_endpoint(endpoint: str) -> None:
    parts = urlsplit(endpoint)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query:
        raise InvalidDingTalkAccount(
            f"endpoint must be an http(s) base URL such as {DEFAULT_ENDPOINT}, not {endpoint!r}",
            field="endpoint",
        )


def _check_token_like(value: str, field: str) -> None:
    if not value.strip() or any(c.isspace() or ord(c) < 32 for c in value):
        raise InvalidDingTalkAccount(f"{field} must not be blank or contain spaces", field=field)


def fingerprint(*parts: str) -> str:
    """A short stable digest of secret values, for cache and rate-limit keys (never the value)."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:20]


class RobotAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A custom robot of one group: its webhook ``access_token`` and, if the robot is set to
    signing ("加签"), its ``secret`` (starts with ``SEC``).

    ``per_minute`` is the robot's posting limit the gateway paces to: DingTalk allows 20 a
    minute and then blocks the robot for 10 minutes; raise it only for a fake robot.
    """

    secret_fields: ClassVar[frozenset[str]] = frozenset({"access_token", "secret"})
    destination_fields: ClassVar[frozenset[str]] = frozenset({"endpoint"})

    access_token: Annotated[str, Meta(min_length=1, max_length=512)]
    secret: Annotated[str, Meta(min_length=4, max_length=512)] | None = None
    endpoint: Annotated[str, Meta(min_length=8, max_length=500)] = DEFAULT_ENDPOINT
    per_minute: Annotated[int, Meta(ge=1, le=1_000_000)] = ROBOT_PER_MINUTE
    timeout: Annotated[float, Meta(gt=0, le=120)] = 10.0

    def __post_init__(self) -> None:
        self.endpoint = self.endpoint.rstrip("/")
        _check_token_like(self.access_token, "access_token")
        if "access_token=" in self.access_token or "/" in self.access_token:
            raise InvalidDingTalkAccount(
                "access_token is the value after access_token= in the webhook URL, not the URL",
                field="access_token",
            )
        if self.secret is not None:
            _check_token_like(self.secret, "secret")
            if not self.secret.startswith("SEC"):
                raise InvalidDingTalkAccount(
                    "secret must be the robot's signing secret, which starts with SEC",
                    field="secret",
                )
        _check_endpoint(self.endpoint)

    def __repr__(self) -> str:  # the token and the secret never reach a log through a repr
        signed = "signed" if self.secret else "unsigned"
        return f"RobotAccount(endpoint={self.endpoint!r}, {signed}, per_minute={self.per_minute})"

    @property
    def robot_id(self) -> str:
        """Names the robot in rate-limit keys and logs without giving its token away."""
        return fingerprint(self.endpoint, self.access_token)


class AppAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An enterprise internal app that sends work notifications (工作通知) as ``agent_id``."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"appsecret"})
    destination_fields: ClassVar[frozenset[str]] = frozenset({"endpoint"})

    appkey: Annotated[str, Meta(min_length=1, max_length=128)]
    appsecret: Annotated[str, Meta(min_length=1, max_length=256)]
    agent_id: Annotated[int, Meta(ge=1)]
    endpoint: Annotated[str, Meta(min_length=8, max_length=500)] = DEFAULT_ENDPOINT
    timeout: Annotated[float, Meta(gt=0, le=120)] = 10.0

    def __post_init__(self) -> None:
        self.endpoint = self.endpoint.rstrip("/")
        _check_token_like(self.appkey, "appkey")
        _check_token_like(self.appsecret, "appsecret")
        _check_endpoint(self.endpoint)

    def __repr__(self) -> str:
        return (
            f"AppAccount(appkey={self.appkey!r}, agent_id={self.agent_id}, "
            f"endpoint={self.endpoint!r})"
        )

    @property
    def token_key(self) -> tuple[str, str, str]:
        """One cached access token per app (and endpoint, and secret: an edit refetches)."""
        return (self.endpoint, self.appkey, fingerprint(self.appsecret))
