"""The webhook account (where and how to POST) and the per-message options."""

from __future__ import annotations

import logging
import re
from typing import Annotated, ClassVar
from urllib.parse import urlsplit

import msgspec
from gateway.channel import AccountInvalid
from msgspec import Meta

log = logging.getLogger(__name__)

# Header names the channel sets itself; an account may not override them.
RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding"})
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")  # an RFC 9110 token


class WebhookAccount(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where to POST: ``url``, signed with ``secret`` if given, with extra ``headers``.

    ``secret`` (16 characters or more) signs every request (see :mod:`msggate_webhook.signing`);
    ``headers`` are sent with every request (an ``Authorization`` token, say), so they are
    secret too; ``timeout`` bounds each request in seconds; ``per_minute`` is the receiver's
    rate limit, if it has one.
    """

    secret_fields: ClassVar[frozenset[str]] = frozenset({"secret", "headers"})
    # a new url means the secret and the headers must be given again (never sent there unasked)
    destination_fields: ClassVar[frozenset[str]] = frozenset({"url"})

    url: Annotated[str, Meta(min_length=8, max_length=2048)]
    secret: Annotated[str, Meta(min_length=16, max_length=256)] | None = None
    headers: dict[str, str] = {}
    timeout: Annotated[float, Meta(gt=0, le=60)] = 10.0
    per_minute: Annotated[int, Meta(ge=1, le=100_000)] | None = None

    def __repr__(self) -> str:  # secret and header values never reach a log through a repr
        return (
            f"WebhookAccount(url={self.url!r}, signed={self.secret is not None}, "
            f"headers={sorted(self.headers)}, timeout={self.timeout})"
        )

    def check(self) -> None:
        """Raise AccountInvalid naming the field that is wrong (the gateway calls it on save)."""
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AccountInvalid("url must be an http:// or https:// URL with a host", "url")
        for name, value in self.headers.items():
            if not HEADER_NAME.match(name):
                raise AccountInvalid(f"{name!r} is not a valid header name", "headers")
            lowered = name.lower()
            if lowered in RESERVED_HEADERS or lowered.startswith("x-msggate-"):
                raise AccountInvalid(f"the channel sets the {name} header itself", "headers")
            if any(c in value for c in "\r\n\0"):
                raise AccountInvalid(f"the {name} header's value has a line break", "headers")

    def secret_values(self) -> list[str]:
        """Every secret string of the account, to keep them out of reasons and answers."""
        values = [*self.headers.values(), *([self.secret] if self.secret else [])]
        return [v for v in values if len(v) >= 4]


Tag = Annotated[str, Meta(min_length=1, max_length=64)]


class WebhookOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Per-message ``options``: the ``event`` name the receiver sees, and free-form ``tags``."""

    event: Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")] = "message"
    tags: Annotated[list[Tag], Meta(max_length=20)] = []
