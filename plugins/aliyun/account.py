"""The account fields every Alibaba Cloud product shares: AccessKey pair, region, endpoint.

Products subclass :class:`AliyunAccount` (``class SmsAccount(AliyunAccount, kw_only=True)``)
and add their own fields; the secret stays listed in ``secret_fields`` and out of the repr.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from gateway.channel import AccountInvalid

log = logging.getLogger(__name__)

_HOST = re.compile(r"^(https?://)?[A-Za-z0-9.-]+(:\d{1,5})?(/[\w./-]*)?$")


class InvalidAliyunAccount(AccountInvalid, ValueError):
    """A malformed account config (a ValueError too, so msgspec reports it while decoding)."""


class AliyunAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An Alibaba Cloud AccessKey and where to use it.

    ``endpoint``: the product's base URL (None = the product's public endpoint), e.g. a fake's
    ``http://127.0.0.1:8025/aliyun-sms``. ``region``: the ``RegionId`` sent with each call.
    ``receipt_token``: the secret last path segment of this account's receipt URL, which is
    configured in the Alibaba Cloud console (receipt pushes are not signed; see
    :mod:`plugins.aliyun.receipts`). ``receipt_ips``: optional CIDRs receipts must come from.
    ``timeout``: seconds to wait for an answer (the provider advises at least 1).
    """

    secret_fields: ClassVar[frozenset[str]] = frozenset({"access_key_secret", "receipt_token"})
    destination_fields: ClassVar[frozenset[str]] = frozenset({"endpoint", "region"})

    access_key_id: Annotated[str, Meta(min_length=1, max_length=128)]
    access_key_secret: Annotated[str, Meta(min_length=1, max_length=256)]
    region: Annotated[str, Meta(min_length=1, max_length=64)] = "cn-hangzhou"
    endpoint: str | None = None
    receipt_token: Annotated[str, Meta(min_length=16, max_length=128)] | None = None
    receipt_ips: list[str] = []
    timeout: Annotated[float, Meta(ge=1, le=60)] = 10.0

    def __post_init__(self) -> None:
        self.check()

    def __repr__(self) -> str:  # never the secret, never the receipt token
        return (
            f"{type(self).__name__}(access_key_id={self.access_key_id!r}, "
            f"region={self.region!r}, endpoint={self.endpoint!r})"
        )

    def check(self) -> None:
        """Raise InvalidAliyunAccount naming the field that is wrong."""
        if self.access_key_id != self.access_key_id.strip() or not self.access_key_id.strip():
            raise InvalidAliyunAccount("the AccessKey ID has spaces around it", "access_key_id")
        if self.access_key_secret != self.access_key_secret.strip():
            raise InvalidAliyunAccount(
                "the AccessKey secret has spaces around it (a copy-and-paste slip?)",
                "access_key_secret",
            )
        if self.endpoint is not None and not _HOST.match(self.endpoint):
            raise InvalidAliyunAccount(
                f"invalid endpoint {self.endpoint!r} (e.g. https://dysmsapi.aliyuncs.com)",
                "endpoint",
            )
        if self.receipt_token is not None and not re.fullmatch(r"[\w-]+", self.receipt_token):
            raise InvalidAliyunAccount(
                "receipt_token may hold letters, digits, '-' and '_' only", "receipt_token"
            )
        for cidr in self.receipt_ips:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise InvalidAliyunAccount(
                    f"{cidr!r} is not an IP address or CIDR", "receipt_ips"
                ) from None

    def base_url(self, default: str) -> str:
        """The endpoint to call: the configured one or the product's ``default``."""
        return self.endpoint or default


def account_from(config: object, account_type: type[AliyunAccount]) -> AliyunAccount:
    """The account in an AccountRef's ``config`` (decoding a plain mapping if need be)."""
    if isinstance(config, account_type):
        return config
    try:
        return msgspec.convert(config, account_type)
    except msgspec.ValidationError as exc:
        cause = exc.__cause__
        field = cause.field if isinstance(cause, AccountInvalid) else None
        raise AccountInvalid(f"invalid account: {exc}", field=field) from None
