"""The conformance kit for channel plugin authors: the tests every channel must pass.

Writing a channel plugin? Subclass :class:`ChannelConformance` in your test suite, give it your
channel class and four fixtures, and pytest runs the same checks msggate runs on its own e-mail
channel::

    # tests/test_conformance.py of msggate-feishu
    import pytest

    from gateway.channel import AccountRef
    from gateway.testing import ChannelConformance, outgoing
    from msggate_feishu.channel import FeishuAccount, FeishuChannel


    class TestFeishuConformance(ChannelConformance):
        channel_type = FeishuChannel  # the kit makes a fresh one per test and closes it

        @pytest.fixture
        def account(self, fake_feishu):  # your fake provider, listening on a real socket
            config = FeishuAccount(app_id="cli_1", app_secret="s3cret-app-secret",
                                   base_url=fake_feishu.url)
            return AccountRef(name="conformance", revision=1, config=config)

        @pytest.fixture
        def bad_account(self, fake_feishu):  # credentials the fake provider refuses
            config = FeishuAccount(app_id="cli_1", app_secret="wrong-app-secret",
                                   base_url=fake_feishu.url)
            return AccountRef(name="conformance-bad", revision=1, config=config)

        @pytest.fixture
        def recipient(self):  # an address your channel accepts and your fake delivers to
            return "ou_7d8a6e6df7621556ce0d21922b676706ccs"

        @pytest.fixture
        def outgoing_for(self):
            def make(recipient: str):
                return outgoing(recipient, subject="Conformance",
                                text="hello from the conformance kit")
            return make

What each fixture must give:

``channel``
    The channel object your ``msggate_channels`` hook returns, new for each test (function
    scope), closed at teardown. ``test_close_is_idempotent`` closes it twice on purpose. Set
    the class attribute ``channel_type`` to your channel class and the kit's own fixture does
    this; override the fixture when your channel needs arguments.
``account``
    An :class:`~gateway.channel.AccountRef` whose ``config`` is an instance of your
    ``account_type`` (exactly what the gateway hands your channel), working against your fake
    provider: ``validate_account`` passes and a send comes back ``Sent``. Use distinctive
    secret values (8 characters or more): the kit looks for them in reprs, logs and reasons.
``bad_account``
    The same, with credentials the provider refuses: ``validate_account`` must raise
    :class:`~gateway.channel.AccountInvalid` and a send must come back ``Retry`` or ``Failed``.
``recipient``
    An address your ``check_recipient`` accepts and the fake provider delivers to.
``outgoing_for``
    A callable ``recipient -> Outgoing``; the kit varies the content itself (text only, HTML
    only if you declare ``ContentKind.RICH``, no subject). :func:`outgoing` builds one with
    fresh ids. Without the fixture the kit sends a subject ("Conformance") and a short text.

Optional fixtures: leave one out and the tests that need it are skipped, saying which fixture
would run them. Give them all: they are what proves your classification.

``retry_outgoing``
    An :class:`~gateway.channel.Outgoing` that your fake provider answers with a temporary error
    (rate limited, busy, 5xx), or a dict ``{name: Outgoing}`` with one per kind of fault; with
    the working ``account`` each must come back ``Retry`` with a reason. Arrange the faults by
    recipient (the fake answers "busy" for ``busy@example.com``), since the kit sends them one
    after another, then a normal send that must still be ``Sent``.
``failed_outgoing``
    The same for permanent errors (unknown recipient, blocked content, bad template): each must
    come back ``Failed`` with a reason and the provider's own ``code``.
``slow_outgoing``
    An Outgoing (or a dict of them) the fake answers only after a delay longer than
    ``cancel_after`` (0.2 s) and shorter than ``leak_grace`` (5 s) — one second is right. The
    kit cancels the send while the provider is still answering, as the dispatcher does when a
    send outlives its lease, and checks that the channel still sends and leaks nothing.

Size limits: a channel whose provider has one declares it as the class attribute
``max_text_chars`` (characters) or ``max_text_bytes`` (UTF-8 bytes) of ``outgoing.text`` (see
:class:`~gateway.channel.Channel`). The kit sends a text exactly at the limit, which must be
``Sent``, and texts one past it (in bytes with a three-byte character), which must be ``Failed``
— refused whole, never cut short. A channel that declares no limit must send a text of
100,000 characters (and its over-the-limit test is skipped).

Where secrets go: the account type's ``destination_fields`` (see
:class:`~gateway.channel.Channel`) must list every field that says where, or how safely, the
secrets are sent. The kit fails a field left out whose name says so (host, port, url,
endpoint, tls, cert, region ...) or whose value in the working ``account`` is a URL or an
address; a field that only looks like one goes in the conformance class's
``not_destinations``. It also moves each destination field it can
(another host, port, choice or flag) and checks that the gateway asks for every stored secret
again, and that an unchanged account keeps them.

Cancellation: every channel is cancelled at many points of a send (before it starts, after a few
event-loop turns, after a few milliseconds), as the dispatcher cancels a send that outlives its
lease and every send at shutdown. The cancelled send must end within ``leak_grace`` by raising
``CancelledError`` (or with its Outcome, if it had just finished), the next send must be
``Sent``, and nothing may leak: no task still running after ``leak_grace``, no "Unclosed client
session/connection", "Task was destroyed but it is pending" or ``ResourceWarning`` once the
channel is closed.

Run against a fake provider on a real socket, not a mock of your HTTP client: the point is to
see your channel turn real provider answers into outcomes. :func:`serving` runs an aiohttp
application (your fake) on a free port for a test; :func:`running_gateway` starts a whole
gateway with your installed plugin, for an end-to-end test over HTTP (:func:`start_gateway`
and :func:`gateway_settings` for fixtures that start several). The async tests are marked
``pytest.mark.asyncio``, so ``pytest-asyncio`` must be installed (any mode). Add your own tests
for what only your provider does (its error codes and how you classify them) next to these.

:func:`check_channel_contract` is the same static check as a function, for a quick assertion
anywhere: ``assert check_channel_contract(MyChannel()) == []``.

The kit's assertions carry their own messages; for pytest's detailed diffs on top, add
``pytest.register_assert_rewrite("gateway.testing")`` to your ``conftest.py`` before the import.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import ipaddress
import logging
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import msgspec
import msgspec.inspect as mi
import pytest
import pytest_asyncio
from aiohttp import web

from gateway.accounts import SecretRequired, kept_secrets_check
from gateway.channel import (
    AccountInvalid,
    AccountRef,
    Channel,
    ContentKind,
    Failed,
    Outcome,
    Outgoing,
    Retry,
    Sent,
    destination_fields,
)
from gateway.plugins import contract_problem
from gateway.running import (
    TERMINAL,
    RunningGateway,
    gateway_settings,
    running_gateway,
    start_gateway,
)

log = logging.getLogger(__name__)

__all__ = [
    "TERMINAL",
    "Cases",
    "ChannelConformance",
    "OutgoingFor",
    "RunningGateway",
    "channel_fixture",
    "check_channel_contract",
    "gateway_settings",
    "outgoing",
    "running_gateway",
    "serving",
    "start_gateway",
]

CHANNEL_NAME_MAX = 64  # the API's limit on a channel name (AccountIn, MessageIn)
MIN_SECRET_LENGTH = 8  # shorter secrets could turn up in a repr by coincidence

# Strings a channel's check_recipient must answer without raising.
JUNK_RECIPIENTS = ("", " ", "not an address", "x" * 400, "\x00", "\N{GRINNING FACE}", "a@b@c")

# A text this long must go through a channel that declares no size limit.
UNDECLARED_TEXT_CHARS = 100_000
WIDE_CHAR = "\N{CJK UNIFIED IDEOGRAPH-6D88}"  # three bytes in UTF-8: tells bytes from characters

# When the kit cancels a send: after this many event-loop turns, then after these delays (s).
CANCEL_TURNS = (0, 1, 2, 3, 5, 8, 13, 21, 34)
CANCEL_DELAYS = (0.001, 0.005, 0.02)

# What each optional fixture is for, said when it is missing.
RETRY_PURPOSE = "that the fake answers with a temporary error (rate limited, busy, 5xx)"
FAILED_PURPOSE = "that the fake refuses for good (unknown recipient, blocked content)"
SLOW_PURPOSE = "that the fake answers after about a second, to cancel a send mid-answer"

# Words in a field name that say where, or how safely, secrets are sent: such a field must be a
# destination field (or be named in the conformance class's ``not_destinations``).
DESTINATION_WORDS = frozenset(
    {
        "host",
        "hostname",
        "port",
        "url",
        "uri",
        "endpoint",
        "server",
        "domain",
        "region",
        "tls",
        "ssl",
        "starttls",
        "proxy",
        "webhook",
        "base",
        "cert",
        "ca",
        "verify",
        "insecure",
        "scheme",
    }
)

OutgoingFor = Callable[[str], Outgoing]
Cases = Outgoing | Mapping[str, Outgoing] | None
"""What an optional fault fixture gives: one Outgoing, a dict of them by name, or None."""


def _struct_fields(account_type: type[msgspec.Struct]) -> dict[str, str]:
    """Field name -> wire name (they differ for a renamed field such as ``from_``/``from``)."""
    return {f.name: f.encode_name for f in msgspec.structs.fields(account_type)}


def check_channel_contract(channel: Any) -> list[str]:
    """Every way ``channel`` breaks the channel contract; an empty list if it meets it.

    The loader's own check (``gateway.plugins``; a channel failing it is not registered) comes
    first, then what would go wrong later: a secret field the account type does not have (or
    that is renamed on the wire, so the gateway could not seal it), a unit that is not a
    string, a ``send`` that is not a coroutine function.
    """
    problems: list[str] = []
    problem = contract_problem(channel)
    if problem:
        problems.append(problem)
    name = getattr(channel, "name", None)
    label = f"channel {name!r}"
    if isinstance(name, str) and name:
        if len(name) > CHANNEL_NAME_MAX:
            problems.append(f"{label}: name is longer than {CHANNEL_NAME_MAX} characters")
        if name != name.strip() or any(c.isspace() or c == "/" for c in name):
            problems.append(f"{label}: name must not contain spaces or '/'")
    kinds = getattr(channel, "content_kinds", None)
    if kinds is not None and not isinstance(kinds, set | frozenset):
        problems.append(f"{label}: content_kinds must be a set, not {type(kinds).__name__}")
    unit = getattr(channel, "unit", None)
    if not isinstance(unit, str) or not unit:
        problems.append(f"{label}: unit must be a non-empty str, not {unit!r}")
    account_type = getattr(channel, "account_type", None)
    if isinstance(account_type, type) and issubclass(account_type, msgspec.Struct):
        problems.extend(_secret_field_problems(label, account_type))
        problems.extend(_destination_field_problems(label, account_type))
    for limit in ("max_text_chars", "max_text_bytes"):
        value = getattr(channel, limit, None)
        if value is not None and (type(value) is not int or value < 1):
            problems.append(f"{label}: {limit} must be None or a whole number above 0: {value!r}")
    for method in ("send", "validate_account", "close"):
        function = getattr(channel, method, None)
        if callable(function) and not inspect.iscoroutinefunction(function):
            problems.append(f"{label}: {method}() must be an async def method")
    check = getattr(channel, "check_recipient", None)
    if not callable(check):
        problems.append(f"{label}: missing check_recipient()")
    elif inspect.iscoroutinefunction(check):
        problems.append(f"{label}: check_recipient() must be synchronous (it runs at accept)")
    if inspect.iscoroutinefunction(getattr(channel, "check_message", None)):
        problems.append(f"{label}: check_message() must be synchronous (it runs at accept)")
    return problems


def _secret_field_problems(label: str, account_type: type[msgspec.Struct]) -> list[str]:
    declared = getattr(account_type, "secret_fields", frozenset())
    if not isinstance(declared, set | frozenset) or not all(isinstance(f, str) for f in declared):
        return [f"{label}: {account_type.__name__}.secret_fields must be a frozenset of str"]
    fields = _struct_fields(account_type)
    problems = []
    for secret in sorted(declared):
        if secret not in fields:
            problems.append(
                f"{label}: secret field {secret!r} is not a field of {account_type.__name__}"
            )
        elif fields[secret] != secret:
            # the gateway seals secrets by wire name: a renamed one would be stored in clear
            problems.append(
                f"{label}: secret field {secret!r} is renamed to {fields[secret]!r} on the wire;"
                " secret fields must keep their name"
            )
    return problems


def _destination_field_problems(label: str, account_type: type[msgspec.Struct]) -> list[str]:
    declared = getattr(account_type, "destination_fields", None)
    if declared is None:
        return []  # the safe default: every non-secret field is a destination
    name = account_type.__name__
    if not isinstance(declared, set | frozenset) or not all(isinstance(f, str) for f in declared):
        return [f"{label}: {name}.destination_fields must be a frozenset of str"]
    fields = _struct_fields(account_type)
    secrets = frozenset(getattr(account_type, "secret_fields", frozenset()))
    problems = []
    for field in sorted(declared):
        if field not in fields:
            problems.append(f"{label}: destination field {field!r} is not a field of {name}")
        elif field in secrets:
            problems.append(f"{label}: {field!r} is a secret field, so not a destination field")
    return problems


def _looks_like_a_place(value: Any) -> bool:
    """A URL with a host, an IP address or ``localhost``: where something connects."""
    if not isinstance(value, str) or not value.strip():
        return False
    if value.strip().lower() == "localhost":
        return True
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(value.strip())
        return True
    try:
        return bool(urlsplit(value.strip()).scheme and urlsplit(value.strip()).hostname)
    except ValueError:
        return False


def _moved(kind: mi.Type, value: Any) -> Any:
    """Another value for a destination field (``NotImplemented`` if the kit cannot make one)."""
    if isinstance(kind, mi.UnionType):
        others = [k for k in kind.types if not isinstance(k, mi.NoneType)]
        return _moved(others[0], value) if len(others) == 1 else NotImplemented
    if isinstance(kind, mi.BoolType):
        return not value
    if isinstance(kind, mi.IntType) and isinstance(value, int):
        return value + 1 if kind.le is None or value + 1 <= kind.le else value - 1
    if isinstance(kind, mi.LiteralType):
        return next((v for v in kind.values if v != value), NotImplemented)
    if isinstance(kind, mi.StrType) and _looks_like_a_place(value):
        parts = urlsplit(value)
        if parts.scheme and parts.hostname:
            return parts._replace(netloc="moved.invalid").geturl()
        return "moved.invalid"
    return NotImplemented


def _strings(value: Any) -> Iterator[str]:
    """Every string in a secret field's value (a header dict's values, a list's items ...)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _strings(item)


def _secret_values(account: AccountRef) -> list[str]:
    """The account's secret values that are long enough to look for."""
    names = getattr(type(account.config), "secret_fields", frozenset())
    values = (s for name in names for s in _strings(getattr(account.config, name, None)))
    return [v for v in values if len(v) >= MIN_SECRET_LENGTH]


def _secret_wire_names(account_type: type) -> list[str]:
    secrets = getattr(account_type, "secret_fields", frozenset())
    return [wire for name, wire in _struct_fields(account_type).items() if name in secrets]


def _leaked(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


def _cases(value: Cases, fixture: str, purpose: str) -> dict[str, Outgoing]:
    """The named Outgoings an optional fixture gives; skip the test when it gives none."""
    if value is None:
        pytest.skip(f"no `{fixture}` fixture: give an Outgoing (or {{name: Outgoing}}) {purpose}")
    if isinstance(value, Outgoing):
        return {fixture: value}
    if (
        isinstance(value, Mapping)
        and value
        and all(isinstance(v, Outgoing) for v in value.values())
    ):
        return {str(name): outgoing for name, outgoing in value.items()}
    pytest.fail(f"`{fixture}` must be an Outgoing or a non-empty dict of them, not {value!r}")


def _limits(channel: Channel) -> tuple[int | None, int | None]:
    return getattr(channel, "max_text_chars", None), getattr(channel, "max_text_bytes", None)


async def _cancel(task: asyncio.Task[Any], timeout: float, where: str) -> None:
    """Cancel a send and check it ends promptly: by CancelledError, or with its Outcome.

    An Outcome is allowed because the send may have finished as it was cancelled (Python
    3.11's ``asyncio.wait_for`` then returns the result rather than raising); what is not
    allowed is to keep working, or to turn the cancellation into an exception.
    """
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        pytest.fail(f"send() cancelled {where} was still running {timeout}s later")
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        pytest.fail(f"send() cancelled {where} raised {exc!r} instead of CancelledError")
    assert isinstance(task.result(), Sent | Retry | Failed), (
        f"send() cancelled {where} returned {task.result()!r}, not an Outcome"
    )


@contextlib.asynccontextmanager
async def _no_leaks(grace: float) -> AsyncIterator[None]:
    """Fail if the block leaves tasks running, or leaks sessions, connections or tasks.

    Leaks show when their objects are collected: asyncio reports them to the loop's exception
    handler ("Unclosed client session", "Task was destroyed but it is pending!") and transports
    warn with ResourceWarning. The block should close what it used; this collects and listens.
    """
    loop = asyncio.get_running_loop()
    gc.collect()  # what earlier tests left behind is not this test's leak
    before = asyncio.all_tasks()
    reported: list[str] = []
    previous = loop.get_exception_handler()

    def record(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reported.append(f"{context.get('message')} {context.get('exception') or ''}".strip())

    loop.set_exception_handler(record)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            yield
            deadline = loop.time() + grace
            while (stray := [t for t in asyncio.all_tasks() - before if not t.done()]) and (
                loop.time() < deadline
            ):
                await asyncio.sleep(0.02)
            gc.collect()
            await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    problems = reported + [str(w.message) for w in caught if w.category is ResourceWarning]
    problems += [f"a task still running {grace}s later: {t!r}" for t in stray]
    assert not problems, "the channel leaks:\n" + "\n".join(problems)


class ChannelConformance:
    """Tests every channel must pass; subclass it and provide the fixtures (see the module).

    ``channel_type`` is your channel class: the ``channel`` fixture makes one per test and closes
    it afterwards (override the fixture instead when the channel needs arguments).
    ``send_timeout`` bounds every call into the channel, so a hanging channel fails the test
    instead of stalling the suite (the dispatcher likewise gives up on a send after 80% of the
    lease). ``cancel_after`` is how long the kit lets a ``slow_outgoing`` send run before it
    cancels it; ``leak_grace`` how long tasks a cancelled send started may take to end.
    """

    send_timeout: ClassVar[float] = 30.0
    cancel_after: ClassVar[float] = 0.2
    leak_grace: ClassVar[float] = 5.0
    channel_type: ClassVar[Callable[[], Channel] | None] = None
    not_destinations: ClassVar[frozenset[str]] = frozenset()
    """Fields whose name looks like a destination (``region``, ``base_...``) but do not decide
    where or how safely secrets are sent; say why in a comment."""

    @pytest_asyncio.fixture
    async def channel(self) -> AsyncIterator[Channel]:
        """A new ``channel_type()`` per test, closed at teardown."""
        if self.channel_type is None:
            raise NotImplementedError(
                "set `channel_type` (your Channel class) or override the `channel` fixture:"
                " your channel, new per test"
            )
        channel = self.channel_type()
        yield channel
        await channel.close()

    @pytest.fixture
    def account(self) -> AccountRef:
        raise NotImplementedError("override the `account` fixture: a working AccountRef")

    @pytest.fixture
    def bad_account(self) -> AccountRef:
        raise NotImplementedError("override the `bad_account` fixture: refused credentials")

    @pytest.fixture
    def recipient(self) -> str:
        raise NotImplementedError("override the `recipient` fixture: an address that works")

    @pytest.fixture
    def outgoing_for(self) -> OutgoingFor:
        """By default a delivery with a subject and a short text; override it for templates,
        options or whatever else your channel needs."""
        return lambda recipient: outgoing(
            recipient, subject="Conformance", text="hello from the conformance kit"
        )

    @pytest.fixture
    def retry_outgoing(self) -> Cases:
        return None  # optional: see the module

    @pytest.fixture
    def failed_outgoing(self) -> Cases:
        return None  # optional: see the module

    @pytest.fixture
    def slow_outgoing(self) -> Cases:
        return None  # optional: see the module

    async def _send(self, channel: Channel, account: AccountRef, outgoing: Outgoing) -> Outcome:
        try:
            outcome = await asyncio.wait_for(channel.send(account, outgoing), self.send_timeout)
        except TimeoutError:
            pytest.fail(f"send() did not return within {self.send_timeout}s")
        except Exception as exc:
            pytest.fail(f"send() raised {exc!r}: it must return Retry or Failed instead")
        assert isinstance(outcome, Sent | Retry | Failed), (
            f"send() returned {outcome!r}, not one Outcome (Sent, Retry or Failed)"
        )
        return outcome

    async def _validate(self, channel: Channel, account: AccountRef) -> None:
        try:
            await asyncio.wait_for(channel.validate_account(account), self.send_timeout)
        except TimeoutError:
            pytest.fail(f"validate_account() did not return within {self.send_timeout}s")

    # -- the contract -----------------------------------------------------------------------

    def test_channel_meets_the_contract(self, channel: Channel) -> None:
        problems = check_channel_contract(channel)
        assert not problems, "the channel breaks the contract:\n" + "\n".join(problems)

    def test_account_fixture_is_what_the_gateway_passes(
        self, channel: Channel, account: AccountRef
    ) -> None:
        assert isinstance(account, AccountRef), f"`account` must be an AccountRef: {account!r}"
        assert isinstance(account.config, channel.account_type), (
            f"account.config must be a {channel.account_type.__name__}, "
            f"not {type(account.config).__name__}"
        )

    def test_account_config_survives_the_gateways_storage_round_trip(
        self, channel: Channel, account: AccountRef
    ) -> None:
        # the gateway stores to_builtins(config) as JSON and rebuilds it with convert()
        stored = msgspec.json.decode(msgspec.json.encode(msgspec.to_builtins(account.config)))
        rebuilt = msgspec.convert(stored, channel.account_type)
        assert rebuilt == account.config, "the account config changes when stored and rebuilt"

    def test_check_recipient_accepts_the_recipient(self, channel: Channel, recipient: str) -> None:
        problem = channel.check_recipient(recipient)
        assert problem is None, f"check_recipient({recipient!r}) refused it: {problem}"

    def test_check_recipient_answers_junk_with_none_or_a_reason(self, channel: Channel) -> None:
        for junk in JUNK_RECIPIENTS:
            answer = channel.check_recipient(junk)
            assert answer is None or (isinstance(answer, str) and answer.strip()), (
                f"check_recipient({junk!r}) returned {answer!r}: give None or a reason"
            )

    # -- send -------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_send_with_the_working_account_is_sent(
        self, channel: Channel, account: AccountRef, recipient: str, outgoing_for: OutgoingFor
    ) -> None:
        outcome = await self._send(channel, account, outgoing_for(recipient))
        assert isinstance(outcome, Sent), f"expected Sent, got {outcome!r}"
        assert isinstance(outcome.units, int) and outcome.units >= 1, f"units: {outcome!r}"

    @pytest.mark.asyncio
    async def test_send_returns_one_outcome_for_every_content_shape(
        self, channel: Channel, account: AccountRef, recipient: str, outgoing_for: OutgoingFor
    ) -> None:
        base = outgoing_for(recipient)
        text = base.text or "plain text"
        shapes = {
            "text only": msgspec.structs.replace(base, text=text, html=None),
            "no subject": msgspec.structs.replace(base, subject=None, text=text),
            "variables": msgspec.structs.replace(base, text=text, variables={"name": "Ada"}),
            "retry attempt": msgspec.structs.replace(base, text=text, attempt=2),
        }
        if ContentKind.RICH in channel.content_kinds:
            shapes["html only"] = msgspec.structs.replace(base, text=None, html="<p>hello</p>")
            shapes["text and html"] = msgspec.structs.replace(base, text=text, html="<b>hi</b>")
        for shape, outgoing in shapes.items():
            outcome = await self._send(channel, account, outgoing)
            if not isinstance(outcome, Sent):
                assert outcome.reason.strip(), f"{shape}: {outcome!r} needs a reason"

    @pytest.mark.asyncio
    async def test_concurrent_sends_each_return_one_outcome(
        self, channel: Channel, account: AccountRef, recipient: str, outgoing_for: OutgoingFor
    ) -> None:
        outgoing = [
            msgspec.structs.replace(outgoing_for(recipient), delivery_id=f"conformance-{i}")
            for i in range(5)
        ]
        outcomes = await asyncio.gather(*(self._send(channel, account, o) for o in outgoing))
        assert all(isinstance(o, Sent) for o in outcomes), outcomes

    @pytest.mark.asyncio
    async def test_send_with_refused_credentials_returns_retry_or_failed(
        self, channel: Channel, bad_account: AccountRef, recipient: str, outgoing_for: OutgoingFor
    ) -> None:
        outcome = await self._send(channel, bad_account, outgoing_for(recipient))
        assert isinstance(outcome, Retry | Failed), f"refused credentials gave {outcome!r}"
        assert isinstance(outcome.reason, str) and outcome.reason.strip(), f"reason: {outcome!r}"
        assert not _leaked(outcome.reason, _secret_values(bad_account)), "a secret in the reason"

    # -- size limits ------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_text_up_to_the_size_limit_is_sent(
        self, channel: Channel, account: AccountRef, recipient: str, outgoing_for: OutgoingFor
    ) -> None:
        declared = [n for n in _limits(channel) if n is not None]
        length = min(declared) if declared else UNDECLARED_TEXT_CHARS
        outgoing = msgspec.structs.replace(outgoing_for(recipient), text="x" * length, html=None)
        outcome = await self._send(channel, account, outgoing)
        problem = (
            "the declared limit is more than the provider takes"
            if declared
            else f"{channel.name!r} declares no max_text_chars or max_text_bytes, so it must"
            " send it whole (declare the provider's limit)"
        )
        assert isinstance(outcome, Sent), (
            f"a text of {length} characters came back {outcome!r}: {problem}"
        )

    @pytest.mark.asyncio
    async def test_text_over_the_size_limit_is_failed_not_truncated(
        self, channel: Channel, account: AccountRef, recipient: str, outgoing_for: OutgoingFor
    ) -> None:
        chars, size = _limits(channel)
        if chars is None and size is None:
            pytest.skip(f"{channel.name!r} declares no max_text_chars or max_text_bytes")
        texts: dict[str, str] = {}
        if chars is not None:
            texts[f"{chars + 1} characters (max_text_chars={chars})"] = "x" * (chars + 1)
        if size is not None:
            count = size // len(WIDE_CHAR.encode()) + 1
            label = f"{count * len(WIDE_CHAR.encode())} UTF-8 bytes (max_text_bytes={size})"
            texts[label] = WIDE_CHAR * count
        base = outgoing_for(recipient)
        for label, text in texts.items():
            outgoing = msgspec.structs.replace(base, text=text, html=None)
            outcome = await self._send(channel, account, outgoing)
            assert isinstance(outcome, Failed), (
                f"a text of {label} came back {outcome!r}: send must refuse it with Failed,"
                " never send it cut short (nor Retry what can never fit)"
            )
            assert outcome.reason.strip(), f"{label}: {outcome!r} needs a reason"

    # -- outcome classification ---------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_temporary_provider_errors_come_back_retry(
        self,
        channel: Channel,
        account: AccountRef,
        recipient: str,
        outgoing_for: OutgoingFor,
        retry_outgoing: Cases,
    ) -> None:
        cases = _cases(retry_outgoing, "retry_outgoing", RETRY_PURPOSE)
        secrets = _secret_values(account)
        for name, outgoing in cases.items():
            outcome = await self._send(channel, account, outgoing)
            assert isinstance(outcome, Retry), f"{name}: expected Retry, got {outcome!r}"
            assert outcome.reason.strip(), f"{name}: {outcome!r} needs a reason"
            after = outcome.after
            assert isinstance(after, int | float) and after >= 0, f"{name}: after: {outcome!r}"
            assert not _leaked(repr(outcome), secrets), f"{name}: a secret in {outcome!r}"
        outcome = await self._send(channel, account, outgoing_for(recipient))
        assert isinstance(outcome, Sent), f"after temporary errors a send gave {outcome!r}"

    @pytest.mark.asyncio
    async def test_permanent_provider_errors_come_back_failed_with_the_providers_code(
        self,
        channel: Channel,
        account: AccountRef,
        recipient: str,
        outgoing_for: OutgoingFor,
        failed_outgoing: Cases,
    ) -> None:
        cases = _cases(failed_outgoing, "failed_outgoing", FAILED_PURPOSE)
        secrets = _secret_values(account)
        for name, outgoing in cases.items():
            outcome = await self._send(channel, account, outgoing)
            assert isinstance(outcome, Failed), f"{name}: expected Failed, got {outcome!r}"
            assert outcome.reason.strip(), f"{name}: {outcome!r} needs a reason"
            assert isinstance(outcome.code, str) and outcome.code.strip(), (
                f"{name}: {outcome!r} needs the provider's own code"
            )
            assert not _leaked(repr(outcome), secrets), f"{name}: a secret in {outcome!r}"
        outcome = await self._send(channel, account, outgoing_for(recipient))
        assert isinstance(outcome, Sent), f"after permanent errors a send gave {outcome!r}"

    # -- validate_account -------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_validate_account_accepts_the_working_account(
        self, channel: Channel, account: AccountRef
    ) -> None:
        try:
            await self._validate(channel, account)
        except AccountInvalid as exc:
            pytest.fail(f"validate_account refused the working account: {exc.reason}")

    @pytest.mark.asyncio
    async def test_validate_account_refuses_bad_account_with_a_reason(
        self, channel: Channel, bad_account: AccountRef
    ) -> None:
        with pytest.raises(AccountInvalid) as raised:
            await self._validate(channel, bad_account)
        reason, field = raised.value.reason, raised.value.field
        assert isinstance(reason, str) and reason.strip(), "AccountInvalid needs a reason"
        assert not _leaked(reason, _secret_values(bad_account)), (
            "a secret in the AccountInvalid reason"
        )
        names = _struct_fields(channel.account_type)
        assert field is None or field in names or field in names.values(), (
            f"AccountInvalid.field {field!r} is not a field of {channel.account_type.__name__}"
        )

    # -- secrets ----------------------------------------------------------------------------

    def test_account_repr_hides_secret_values(self, channel: Channel, account: AccountRef) -> None:
        declared = getattr(channel.account_type, "secret_fields", frozenset())
        secrets = _secret_values(account)
        if declared:
            assert secrets, (
                f"give the `account` fixture secret values of {MIN_SECRET_LENGTH} characters"
                f" or more in {sorted(declared)}, so this test can look for them"
            )
        shown = {
            "repr(account)": repr(account),
            "str(account)": str(account),
            "repr(account.config)": repr(account.config),
            "str(account.config)": str(account.config),
        }
        for where, text in shown.items():
            assert not _leaked(text, secrets), f"a secret shows in {where}"

    def test_fields_that_say_where_secrets_go_are_destination_fields(
        self, channel: Channel, account: AccountRef
    ) -> None:
        account_type = channel.account_type
        secrets = frozenset(getattr(account_type, "secret_fields", frozenset()))
        if not secrets:
            pytest.skip(f"{account_type.__name__} has no secret fields")
        wire = _struct_fields(account_type)
        where = destination_fields(account_type)
        missing = []
        for field, name in wire.items():
            if field in secrets or name in where or name in self.not_destinations:
                continue
            value = getattr(account.config, field)
            words = set(name.lower().split("_")) & DESTINATION_WORDS
            if words or _looks_like_a_place(value):
                why = f"its name says {sorted(words)[0]!r}" if words else f"it holds {value!r}"
                missing.append(f"{name!r} ({why})")
        assert not missing, (
            f"{account_type.__name__} does not list {', '.join(missing)} in destination_fields:"
            " an edit could then send the stored secrets somewhere new without asking for them"
            " again (list it, or name it in the conformance class's not_destinations)"
        )

    def test_an_edit_that_moves_the_account_asks_for_its_secrets_again(
        self, channel: Channel, account: AccountRef
    ) -> None:
        account_type = channel.account_type
        stored = msgspec.to_builtins(account.config)
        held = [k for k in _secret_wire_names(account_type) if stored.get(k) not in (None, "")]
        if not held:
            pytest.skip("the `account` fixture holds no secret")
        try:  # saved again unchanged, it keeps its secrets
            kept_secrets_check(account_type, stored, account.config, given=set())
        except SecretRequired as exc:
            pytest.fail(f"an unchanged account asked for its secrets again: {exc.message}")
        info = mi.type_info(account_type)
        assert isinstance(info, mi.StructType)
        tried = []
        for f in info.fields:
            if f.encode_name not in destination_fields(account_type):
                continue
            value = _moved(f.type, stored.get(f.encode_name))
            try:
                edited = msgspec.convert({**stored, f.encode_name: value}, account_type)
            except (msgspec.ValidationError, AccountInvalid, TypeError):
                continue  # not a value this type takes; other fields are tried
            tried.append(f.encode_name)
            try:
                kept_secrets_check(account_type, stored, edited, given=set())
            except SecretRequired as exc:
                assert sorted(exc.secrets) == sorted(held), (
                    f"moving {f.encode_name!r} asked for {exc.secrets}, not every stored {held}"
                )
            else:
                pytest.fail(
                    f"{f.encode_name!r} changed to {value!r} and the stored secrets were kept:"
                    f" does {account_type.__name__} undo the change when it decodes?"
                )
        if not tried:
            pytest.skip("the kit could not make another valid value for any destination field")

    @pytest.mark.asyncio
    async def test_secrets_never_reach_the_log(
        self,
        channel: Channel,
        account: AccountRef,
        bad_account: AccountRef,
        recipient: str,
        outgoing_for: OutgoingFor,
        retry_outgoing: Cases,
        failed_outgoing: Cases,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        await self._validate(channel, account)
        outcomes = [await self._send(channel, account, outgoing_for(recipient))]
        with pytest.raises(AccountInvalid):
            await self._validate(channel, bad_account)
        outcomes.append(await self._send(channel, bad_account, outgoing_for(recipient)))
        for cases in (retry_outgoing, failed_outgoing):
            if cases is not None:
                for outgoing in _cases(cases, "faults", RETRY_PURPOSE).values():
                    outcomes.append(await self._send(channel, account, outgoing))
        secrets = _secret_values(account) + _secret_values(bad_account)
        assert not _leaked(caplog.text, secrets), "a secret was logged"
        for outcome in outcomes:
            assert not _leaked(repr(outcome), secrets), f"a secret in the outcome {outcome!r}"
        for where, text in {"repr(channel)": repr(channel), "str(channel)": str(channel)}.items():
            assert not _leaked(text, secrets), f"a secret shows in {where} after sending"

    # -- close ------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_close_is_idempotent(
        self, channel: Channel, account: AccountRef, recipient: str, outgoing_for: OutgoingFor
    ) -> None:
        await self._send(channel, account, outgoing_for(recipient))  # so there is something open
        await asyncio.wait_for(channel.close(), self.send_timeout)
        await asyncio.wait_for(channel.close(), self.send_timeout)

    # -- cancellation -----------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_cancelled_sends_leave_the_channel_usable_and_leak_nothing(
        self, channel: Channel, account: AccountRef, recipient: str, outgoing_for: OutgoingFor
    ) -> None:
        warm = await self._send(channel, account, outgoing_for(recipient))  # pools, tokens
        assert isinstance(warm, Sent), f"expected Sent, got {warm!r}"
        async with _no_leaks(self.leak_grace):
            for turns in CANCEL_TURNS:
                task = asyncio.ensure_future(channel.send(account, outgoing_for(recipient)))
                for _ in range(turns):
                    await asyncio.sleep(0)
                await _cancel(task, self.leak_grace, f"after {turns} event-loop turns")
            for delay in CANCEL_DELAYS:
                task = asyncio.ensure_future(channel.send(account, outgoing_for(recipient)))
                await asyncio.sleep(delay)
                await _cancel(task, self.leak_grace, f"after {delay * 1000:g} ms")
            outcome = await self._send(channel, account, outgoing_for(recipient))
            assert isinstance(outcome, Sent), f"after cancelled sends a send gave {outcome!r}"
            await asyncio.wait_for(channel.close(), self.send_timeout)

    @pytest.mark.asyncio
    async def test_send_cancelled_while_the_provider_answers_leaves_the_channel_usable(
        self,
        channel: Channel,
        account: AccountRef,
        recipient: str,
        outgoing_for: OutgoingFor,
        slow_outgoing: Cases,
    ) -> None:
        cases = _cases(slow_outgoing, "slow_outgoing", SLOW_PURPOSE)
        warm = await self._send(channel, account, outgoing_for(recipient))
        assert isinstance(warm, Sent), f"expected Sent, got {warm!r}"
        async with _no_leaks(self.leak_grace):
            for name, outgoing in cases.items():
                task = asyncio.ensure_future(channel.send(account, outgoing))
                await asyncio.sleep(self.cancel_after)
                assert not task.done(), (
                    f"{name} was answered within {self.cancel_after}s: make the fake slower"
                )
                await _cancel(task, self.leak_grace, f"{name} after {self.cancel_after}s")
            outcome = await self._send(channel, account, outgoing_for(recipient))
            assert isinstance(outcome, Sent), f"after a cancelled send a send gave {outcome!r}"
            await asyncio.wait_for(channel.close(), self.send_timeout)


# -- helpers for a plugin's own tests ---------------------------------------------------------


def outgoing(recipient: str, **fields: Any) -> Outgoing:
    """An :class:`~gateway.channel.Outgoing` to ``recipient`` with fresh delivery and message
    ids, as the dispatcher hands one to ``send``; ``fields`` set the rest (``text``,
    ``subject``, ``template``, ``variables``, ``options`` ...)."""
    return Outgoing(
        delivery_id=str(uuid.uuid4()), message_id=str(uuid.uuid4()), recipient=recipient, **fields
    )


def channel_fixture(channel_type: Callable[[], Channel], name: str = "channel") -> Any:
    """A pytest fixture ``name`` giving a new ``channel_type()`` per test, closed at teardown;
    in a test module or ``conftest.py``: ``channel = channel_fixture(MyChannel)``."""

    @pytest_asyncio.fixture(name=name)
    async def fixture() -> AsyncIterator[Channel]:
        channel = channel_type()
        yield channel
        await channel.close()

    return fixture


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``app`` (your fake provider) on a free port for the block; yield its base URL.

    ``async with serving(make_fake_app()) as url:`` — the application keeps its state (an
    ``AppKey``), so the test can read what the fake received and tell it which faults to inject.
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
