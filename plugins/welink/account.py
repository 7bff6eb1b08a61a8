"""The WeLink sender account: the app's client_id and client_secret, and where to reach WeLink."""

from __future__ import annotations

import logging
import re
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from gateway.channel import AccountInvalid

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://open.welink.huaweicloud.com"
OWNER_MAX_BYTES = 18  # msgOwner, "不超过18字节" (start-141)


class InvalidWeLinkAccount(AccountInvalid, ValueError):
    """A malformed account config; a ValueError too, so msgspec reports it while decoding."""


class WeLinkAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A WeLink app (开放平台 → 应用 → 基本信息).

    ``msg_owner`` is the sender label cards show (``msgOwner``, e.g. "考勤", at most 18 bytes);
    ``public_acc_id`` sends through a public account instead of the notification center;
    ``endpoint`` is the API base URL (the real service, or a fake's ``http://host:port/welink``).
    """

    secret_fields: ClassVar[frozenset[str]] = frozenset({"client_secret"})
    destination_fields: ClassVar[frozenset[str]] = frozenset({"endpoint"})

    client_id: Annotated[str, Meta(min_length=1, max_length=255)]
    client_secret: Annotated[str, Meta(min_length=1, max_length=255)]
    endpoint: str = DEFAULT_ENDPOINT
    msg_owner: Annotated[str, Meta(min_length=1)] = "通知"
    public_acc_id: str | None = None
    timeout: Annotated[float, Meta(gt=0, le=120)] = 10.0

    def __post_init__(self) -> None:
        self.check()

    def __repr__(self) -> str:  # the secret must never reach a log through a repr
        return f"WeLinkAccount(client_id={self.client_id!r}, endpoint={self.endpoint!r})"

    def check(self) -> None:
        """Raise InvalidWeLinkAccount naming the field that is wrong."""
        if not re.match(r"https?://[^\s/]+", self.endpoint) or any(
            c.isspace() for c in self.endpoint
        ):
            raise InvalidWeLinkAccount(
                f"endpoint must be an http(s) URL, not {self.endpoint!r}", field="endpoint"
            )
        if len(self.msg_owner.encode()) > OWNER_MAX_BYTES:
            raise InvalidWeLinkAccount(
                f"msg_owner is {len(self.msg_owner.encode())} bytes; WeLink allows"
                f" {OWNER_MAX_BYTES} (a CJK character is 3 bytes)",
                field="msg_owner",
            )

    @property
    def base_url(self) -> str:
        return self.endpoint.rstrip("/")


def account_from(config: object) -> WeLinkAccount:
    """The WeLinkAccount in an AccountRef's ``config`` (decoding a plain mapping if need be)."""
    if isinstance(config, WeLinkAccount):
        return config
    try:
        return msgspec.convert(config, WeLinkAccount)
    except msgspec.ValidationError as exc:
        cause = exc.__cause__
        field = cause.field if isinstance(cause, AccountInvalid) else None
        raise AccountInvalid(f"invalid WeLink account: {exc}", field=field) from None
