"""The conformance kit for channel plugin authors: the tests every channel must pass.

Writing a channel plugin? Subclass :class:`ChannelConformance` in your test suite, give it five
fixtures, and pytest runs the same checks msggate runs on its own e-mail channel::

    # tests/test_conformance.py of msggate-feishu
    import pytest

    from gateway.channel import AccountRef, Outgoing
    from gateway.testing import ChannelConformance
    from msggate_feishu.channel import FeishuAccount, FeishuChannel


    class TestFeishuConformance(ChannelConformance):
        @pytest.fixture
        async def channel(self):
            channel = FeishuChannel()  # a fresh one per test: one of the tests closes it
            yield channel
            await channel.close()

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
            def make(recipient: str) -> Outgoing:
                return Outgoing(delivery_id="d-1", message_id="m-1", recipient=recipient,
                                subject="Conformance", text="hello from the conformance kit")
            return make

What each fixture must give:

``channel``
    The channel object your ``msggate_channels`` hook returns, new for each test (function
    scope), closed at teardown. ``test_close_is_idempotent`` closes it twice on purpose.
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
    only if you declare ``ContentKind.RICH``, no subject).

Run against a fake provider on a real socket, not a mock of your HTTP client: the point is to
see your channel turn real provider answers into outcomes. The async tests are marked
``pytest.mark.asyncio``, so ``pytest-asyncio`` must be installed (any mode). Add your own tests
for what only your provider does (its error codes and how you classify them) next to these.

:func:`check_channel_contract` is the same static check as a function, for a quick assertion
anywhere: ``assert check_channel_contract(MyChannel()) == []``.

The kit's assertions carry their own messages; for pytest's detailed diffs on top, add
``pytest.register_assert_rewrite("gateway.testing")`` to your ``conftest.py`` before the import.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec
import pytest

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
)
from gateway.plugins import contract_problem

log = logging.getLogger(__name__)

CHANNEL_NAME_MAX = 64  # the API's limit on a channel name (AccountIn, MessageIn)
MIN_SECRET_LENGTH = 8  # shorter secrets could turn up in a repr by coincidence

# Strings a channel's check_recipient must answer without raising.
JUNK_RECIPIENTS = ("", " ", "not an address", "x" * 400, "\x00", "\N{GRINNING FACE}", "a@b@c")

OutgoingFor = Callable[[str], Outgoing]


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
    for method in ("send", "validate_account", "close"):
        function = getattr(channel, method, None)
        if callable(function) and not inspect.iscoroutinefunction(function):
            problems.append(f"{label}: {method}() must be an async def method")
    check = getattr(channel, "check_recipient", None)
    if not callable(check):
        problems.append(f"{label}: missing check_recipient()")
    elif inspect.iscoroutinefunction(check):
        problems.append(f"{label}: check_recipient() must be synchronous (it runs at accept)")
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


def _secret_values(account: AccountRef) -> list[str]:
    """The account's secret values that are long enough to look for."""
    names = getattr(type(account.config), "secret_fields", frozenset())
    values = (getattr(account.config, name, None) for name in names)
    return [v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH]


def _leaked(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


class ChannelConformance:
    """Tests every channel must pass; subclass it and provide the fixtures (see the module).

    ``send_timeout`` bounds every call into the channel, so a hanging channel fails the test
    instead of stalling the suite (the dispatcher likewise gives up on a send after 80% of the
    lease).
    """

    send_timeout: ClassVar[float] = 30.0

    @pytest.fixture
    def channel(self) -> Channel:
        raise NotImplementedError("override the `channel` fixture: your channel, new per test")

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
        raise NotImplementedError("override the `outgoing_for` fixture: recipient -> Outgoing")

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

    @pytest.mark.asyncio
    async def test_secrets_never_reach_the_log(
        self,
        channel: Channel,
        account: AccountRef,
        bad_account: AccountRef,
        recipient: str,
        outgoing_for: OutgoingFor,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        await self._validate(channel, account)
        await self._send(channel, account, outgoing_for(recipient))
        with pytest.raises(AccountInvalid):
            await self._validate(channel, bad_account)
        await self._send(channel, bad_account, outgoing_for(recipient))
        secrets = _secret_values(account) + _secret_values(bad_account)
        assert not _leaked(caplog.text, secrets), "a secret was logged"

    # -- close ------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_close_is_idempotent(
        self, channel: Channel, account: AccountRef, recipient: str, outgoing_for: OutgoingFor
    ) -> None:
        await self._send(channel, account, outgoing_for(recipient))  # so there is something open
        await asyncio.wait_for(channel.close(), self.send_timeout)
        await asyncio.wait_for(channel.close(), self.send_timeout)
