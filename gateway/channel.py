"""The channel contract: what a channel plugin provides and what its ``send`` returns.

A channel is an object (usually an instance of a :class:`Channel` subclass) that a plugin hands
over through the ``msggate_channels`` hook. The gateway owns persistence, retries and metering;
the channel only talks to its provider and classifies the answer into one :data:`Outcome`.
"""

from __future__ import annotations

import abc
import enum
from typing import Any, ClassVar

import msgspec


class ContentKind(enum.StrEnum):
    """What a channel can carry: plain text, rich text (HTML) or a voice script."""

    TEXT = "text"
    RICH = "rich"
    VOICE = "voice"


class AccountRef(msgspec.Struct, frozen=True):
    """One sender account as a channel sees it: decoded config with secrets in clear.

    ``revision`` changes whenever the account is edited, so a channel may key its connection
    pools and token caches on ``(name, revision)`` and drop stale ones.
    """

    name: str
    revision: int
    config: Any

    def __repr__(self) -> str:  # never let secrets reach a log through a repr
        return f"AccountRef(name={self.name!r}, revision={self.revision})"


class Outgoing(msgspec.Struct, frozen=True):
    """One delivery to send: a single recipient of a message."""

    delivery_id: str
    message_id: str
    recipient: str
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    variables: dict[str, Any] = {}
    attempt: int = 1
    template: str | None = None
    options: Any = None
    raw: bytes | None = None
    """The original MIME message, for mail that came in through the SMTP relay: the e-mail
    channel sends it as is (headers, attachments and all); other channels ignore it."""


class MessageDraft(msgspec.Struct, frozen=True):
    """A message being accepted, before it is split into deliveries: what ``check_message``
    sees. ``options`` are the message's options as checked against ``options_type``."""

    subject: str | None = None
    text: str | None = None
    html: str | None = None
    variables: dict[str, Any] = {}
    template: str | None = None
    options: dict[str, Any] = {}


class RateLimit(msgspec.Struct, frozen=True):
    """At most ``limit`` sends per ``per_seconds`` for everything sharing ``key``.

    The gateway paces sends to this rate (spread evenly, shared by all nodes when Redis is
    configured) by deferring deliveries, never by sleeping in ``send``.
    """

    key: str
    limit: int
    per_seconds: float


class Sent(msgspec.Struct, frozen=True, tag="sent"):
    """The provider accepted the delivery."""

    provider_id: str | None = None
    units: int = 1
    answer: str | None = None


class Retry(msgspec.Struct, frozen=True, tag="retry"):
    """A temporary failure: try again, no sooner than ``after`` seconds (0 = gateway's backoff)."""

    reason: str
    after: float = 0.0
    code: str | None = None


class Failed(msgspec.Struct, frozen=True, tag="failed"):
    """A permanent failure: the provider's own code and reason; never retried."""

    reason: str
    code: str | None = None


Outcome = Sent | Retry | Failed
"""What ``send`` returns. A timeout after a non-idempotent request (SMS, a call) may already
have reached the provider: return ``Failed`` with code ``"unknown"`` rather than ``Retry`` if a
duplicate would be worse than a miss, and let a receipt settle it."""


class AccountInvalid(Exception):
    """Raised by ``validate_account`` with the provider's reason and, if known, the field."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class MessageInvalid(Exception):
    """Raised by ``check_message``: why the provider would refuse the message, and the field
    (``template``, ``variables``, ``text`` ...) to name in the caller's 422."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class Channel(abc.ABC):
    """Base class for channels. Subclasses set the class attributes and implement ``send``.

    - ``name``: the channel name used in the API (``"email"``, ``"sms"`` ...), unique.
    - ``content_kinds``: which :class:`ContentKind` values the channel accepts.
    - ``account_type``: a msgspec Struct decoding an account's ``config``; its class attribute
      ``secret_fields`` (a frozenset of field names) lists what is encrypted at rest and never
      returned by the API, and ``destination_fields`` lists the fields that say where and how
      safely those secrets are sent (host, port, TLS, endpoint, URL, region ...). Changing one
      of them requires every stored secret to be entered again, so an edit can never send a
      stored secret somewhere new; without the declaration every non-secret field counts (see
      :func:`destination_fields`).
    - ``unit``: the metering unit one ``Sent.units`` counts (``"message"``, ``"segment"`` ...).
    - ``options_type``: a msgspec Struct for the message's channel-specific ``options`` (message
      type, card title, @-mentions ...), decoded when a message is accepted (a bad option is a
      422 naming ``options.<field>``) and handed to ``send`` as ``outgoing.options``; None if
      the channel takes no options.
    - ``max_text_chars`` / ``max_text_bytes``: the longest ``outgoing.text`` the provider takes
      whole, in characters or UTF-8 bytes (None: no limit). Declare the limit when the provider
      has one: ``send`` returns ``Failed`` for a longer text (never cuts it short, never lets
      the provider truncate it), and the conformance kit (:mod:`gateway.testing`) checks that
      a text at the limit is sent and one past it is refused.
    """

    name: ClassVar[str]
    content_kinds: ClassVar[frozenset[ContentKind]]
    account_type: ClassVar[type[msgspec.Struct]]
    unit: ClassVar[str] = "message"
    options_type: ClassVar[type[msgspec.Struct] | None] = None
    max_text_chars: ClassVar[int | None] = None
    max_text_bytes: ClassVar[int | None] = None

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        """The provider's documented rate limits this send falls under (none by default)."""
        return []

    @abc.abstractmethod
    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        """Send one delivery; return an Outcome. Must not raise for provider trouble."""

    def normalize_recipient(self, recipient: str) -> str:
        """The one spelling of ``recipient`` the gateway stores, de-duplicates and matches
        receipts against (e.g. ``+86 138-0013-8000`` → ``13800138000``). Called on accept,
        before ``check_recipient``; the default strips surrounding white space."""
        return recipient.strip()

    def check_recipient(self, recipient: str) -> str | None:
        """Why ``recipient`` is not an address this channel can send to, or None if it is.

        Called when a message is accepted, so a bad address is refused with 422 at once.
        """
        return None

    def check_message(self, message: MessageDraft) -> None:
        """Raise :class:`MessageInvalid` for a message the provider would refuse whatever the
        recipient and account (a template-only provider given no template, say).

        Called when a message is accepted (HTTP API, console, SMTP relay), after its options
        are checked and before it is committed, so the caller gets a 422 naming the field at
        once instead of a failed delivery later. Synchronous and fast: no I/O. The default
        accepts everything.
        """

    async def validate_account(self, account: AccountRef) -> None:
        """Prove the account's credentials with a real provider call; raise AccountInvalid."""

    async def close(self) -> None:
        """Release connections and caches; called once at shutdown."""


def secret_fields(account_type: type) -> frozenset[str]:
    """The wire (JSON) names of the secret fields an account type declares.

    ``secret_fields`` lists attribute names; a field renamed on the wire (``msgspec.field(name=
    ...)``) is matched by its wire name, which is what the stored config and the API use.
    """
    declared = frozenset(getattr(account_type, "secret_fields", frozenset()))
    if not declared:
        return declared
    wire = {f.name: f.encode_name for f in msgspec.structs.fields(account_type)}
    return frozenset(wire.get(name, name) for name in declared)


def destination_fields(account_type: type) -> frozenset[str]:
    """The wire names of the fields that say where (and how safely) an account's secrets go.

    An account type declares them as the class attribute ``destination_fields`` (attribute
    names, like ``secret_fields``; an empty frozenset if the secrets always go to one fixed
    place). One that declares nothing gets the safe default: every non-secret field, so any
    change asks for the secrets again.
    """
    wire = {f.name: f.encode_name for f in msgspec.structs.fields(account_type)}
    declared = getattr(account_type, "destination_fields", None)
    if declared is None:
        return frozenset(wire.values()) - secret_fields(account_type)
    return frozenset(wire.get(name, name) for name in declared)
