"""The conformance kit catches what it promises to: each broken channel here fails its check.

The kit's tests are called directly on deliberately broken in-memory channels; a good channel
passes the same calls, so a failure is the kit's finding, not the setup's.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, ClassVar

import aiohttp
import msgspec
import pytest

from gateway.channel import (
    AccountRef,
    Channel,
    ContentKind,
    Failed,
    Outcome,
    Outgoing,
    Retry,
    Sent,
)
from gateway.testing import ChannelConformance, check_channel_contract

KIT_FAILURE = (AssertionError, pytest.fail.Exception)


class MemoryAccount(msgspec.Struct):
    token: str
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})


class GoodChannel(Channel):
    """Declares 10 characters; refuses more; "busy" is Retry and "nobody" Failed."""

    name = "memory"
    content_kinds = frozenset({ContentKind.TEXT})
    account_type = MemoryAccount
    max_text_chars: ClassVar[int | None] = 10

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def _too_long(self, text: str) -> bool:
        return self.max_text_chars is not None and len(text) > self.max_text_chars

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        await asyncio.sleep(0.001)
        text = outgoing.text or ""
        if self._too_long(text):
            return Failed(reason=f"the text is {len(text)} characters", code="too_long")
        if outgoing.recipient == "busy":
            return Retry(reason="provider busy", after=1.0, code="BUSY")
        if outgoing.recipient == "nobody":
            return Failed(reason="no such recipient", code="NO_USER")
        self.sent.append(outgoing)
        return Sent(provider_id=outgoing.delivery_id)


class Truncating(GoodChannel):
    def _too_long(self, text: str) -> bool:
        return False  # sends the first 10 characters and says Sent


class CountsCharactersAsBytes(GoodChannel):
    max_text_chars = None
    max_text_bytes: ClassVar[int | None] = 30

    def _too_long(self, text: str) -> bool:
        return len(text) > 30  # a 33-byte text of 11 characters goes through


class RetriesEverything(GoodChannel):
    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        outcome = await super().send(account, outgoing)
        return Retry(reason=outcome.reason) if isinstance(outcome, Failed) else outcome


class LeavesTasks(GoodChannel):
    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        asyncio.get_running_loop().create_task(asyncio.sleep(60))  # a "background flush"
        return await super().send(account, outgoing)


class DropsSessions(GoodChannel):
    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        aiohttp.ClientSession()  # never closed
        return await super().send(account, outgoing)


class IgnoresCancellation(GoodChannel):
    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            await asyncio.sleep(60)  # "finish what we started"
        return await super().send(account, outgoing)


class Kit(ChannelConformance):
    send_timeout = 5.0
    leak_grace = 0.3


KIT = Kit()
ACCOUNT = AccountRef(name="kit", revision=1, config=MemoryAccount(token="kit-secret-token"))


def outgoing(recipient: str = "someone", text: str = "hello") -> Outgoing:
    return Outgoing(str(uuid.uuid4()), str(uuid.uuid4()), recipient, text=text)


def cases(*recipients: str) -> dict[str, Outgoing]:
    return {r: outgoing(r) for r in recipients}


async def run(test: str, channel: Channel, **extra: Any) -> None:
    """Run one kit test on ``channel`` with the usual fixtures, closing the channel after."""
    method = getattr(KIT, test)
    fixtures = {"account": ACCOUNT, "recipient": "someone", "outgoing_for": outgoing, **extra}
    names = method.__code__.co_varnames[1 : method.__code__.co_argcount]
    before = asyncio.all_tasks()
    try:
        await method(channel, **{n: fixtures[n] for n in names if n != "channel"})
    finally:
        await channel.close()
        leftovers = asyncio.all_tasks() - before  # what the broken channels leave behind
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)


@pytest.mark.parametrize(
    ("test", "extra"),
    [
        ("test_text_up_to_the_size_limit_is_sent", {}),
        ("test_text_over_the_size_limit_is_failed_not_truncated", {}),
        ("test_temporary_provider_errors_come_back_retry", {"retry_outgoing": cases("busy")}),
        (
            "test_permanent_provider_errors_come_back_failed_with_the_providers_code",
            {"failed_outgoing": cases("nobody")},
        ),
        ("test_cancelled_sends_leave_the_channel_usable_and_leak_nothing", {}),
    ],
)
async def test_a_good_channel_passes_the_kit(test: str, extra: dict) -> None:
    assert check_channel_contract(GoodChannel()) == []
    await run(test, GoodChannel(), **extra)


async def test_a_channel_that_truncates_over_long_text_fails() -> None:
    with pytest.raises(KIT_FAILURE, match="must refuse it with Failed"):
        await run("test_text_over_the_size_limit_is_failed_not_truncated", Truncating())


async def test_a_channel_that_counts_characters_for_a_byte_limit_fails() -> None:
    with pytest.raises(KIT_FAILURE, match="UTF-8 bytes"):
        await run(
            "test_text_over_the_size_limit_is_failed_not_truncated", CountsCharactersAsBytes()
        )


async def test_a_channel_without_a_declared_limit_must_send_long_text() -> None:
    class NoLimitButRefuses(GoodChannel):
        max_text_chars = None

        def _too_long(self, text: str) -> bool:
            return len(text) > 1000

    with pytest.raises(KIT_FAILURE, match="declares no max_text_chars"):
        await run("test_text_up_to_the_size_limit_is_sent", NoLimitButRefuses())


async def test_a_channel_that_retries_permanent_errors_fails() -> None:
    with pytest.raises(KIT_FAILURE, match="expected Failed"):
        await run(
            "test_permanent_provider_errors_come_back_failed_with_the_providers_code",
            RetriesEverything(),
            failed_outgoing=cases("nobody"),
        )


async def test_classification_is_skipped_only_without_the_fixture_and_says_which() -> None:
    with pytest.raises(pytest.skip.Exception, match="no `retry_outgoing` fixture"):
        await run(
            "test_temporary_provider_errors_come_back_retry", GoodChannel(), retry_outgoing=None
        )


async def test_tasks_left_running_by_send_are_a_leak() -> None:
    with pytest.raises(KIT_FAILURE, match="a task still running"):
        await run("test_cancelled_sends_leave_the_channel_usable_and_leak_nothing", LeavesTasks())


async def test_unclosed_client_sessions_are_a_leak() -> None:
    with pytest.raises(KIT_FAILURE, match="Unclosed client session"):
        await run("test_cancelled_sends_leave_the_channel_usable_and_leak_nothing", DropsSessions())


async def test_a_send_that_ignores_cancellation_fails() -> None:
    with pytest.raises(KIT_FAILURE, match="still running"):
        await run(
            "test_cancelled_sends_leave_the_channel_usable_and_leak_nothing", IgnoresCancellation()
        )


def test_limits_must_be_positive_whole_numbers() -> None:
    class Zero(GoodChannel):
        max_text_chars = 0

    [problem] = check_channel_contract(Zero())
    assert "max_text_chars must be None or a whole number above 0" in problem


# -- where secrets go -------------------------------------------------------------------------


class EndpointAccount(msgspec.Struct, kw_only=True):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})
    destination_fields: ClassVar[frozenset[str]] = frozenset({"endpoint", "port"})
    token: str
    endpoint: str = "https://api.example.com/v1"
    port: int = 443
    label: str = "ops"


class EndpointChannel(GoodChannel):
    account_type = EndpointAccount


def _endpoint_account(account_type: type, **config: Any) -> AccountRef:
    return AccountRef(
        "kit", 1, msgspec.convert({"token": "kit-secret-token", **config}, account_type)
    )


def test_declared_destinations_pass_and_every_one_asks_for_the_secret_again() -> None:
    assert check_channel_contract(EndpointChannel()) == []
    account = _endpoint_account(EndpointAccount)
    KIT.test_fields_that_say_where_secrets_go_are_destination_fields(EndpointChannel(), account)
    KIT.test_an_edit_that_moves_the_account_asks_for_its_secrets_again(EndpointChannel(), account)


def test_an_undeclared_url_or_host_field_fails() -> None:
    class Forgets(EndpointAccount, kw_only=True):
        destination_fields: ClassVar[frozenset[str]] = frozenset()  # "nothing is a destination"
        target: str = "http://127.0.0.1:8025/fake"

    class ForgetsChannel(GoodChannel):
        account_type = Forgets

    account = _endpoint_account(Forgets)
    with pytest.raises(
        KIT_FAILURE, match=r"does not list 'endpoint' .*'port'.*'target' \(it holds"
    ):
        KIT.test_fields_that_say_where_secrets_go_are_destination_fields(ForgetsChannel(), account)

    class Explains(ChannelConformance):
        not_destinations = frozenset({"endpoint", "port", "target"})

    Explains().test_fields_that_say_where_secrets_go_are_destination_fields(
        ForgetsChannel(), account
    )


def test_an_account_type_that_declares_nothing_passes_by_the_safe_default() -> None:
    class Silent(msgspec.Struct, kw_only=True):
        secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})
        token: str
        endpoint: str = "https://api.example.com"

    class SilentChannel(GoodChannel):
        account_type = Silent

    assert check_channel_contract(SilentChannel()) == []
    account = _endpoint_account(Silent)
    KIT.test_fields_that_say_where_secrets_go_are_destination_fields(SilentChannel(), account)
    KIT.test_an_edit_that_moves_the_account_asks_for_its_secrets_again(SilentChannel(), account)


def test_a_type_that_undoes_a_moved_destination_fails() -> None:
    class Pinned(EndpointAccount, kw_only=True):
        destination_fields: ClassVar[frozenset[str]] = frozenset({"endpoint"})

        def __post_init__(self) -> None:
            self.endpoint = "https://api.example.com/v1"  # stored one way, used another

    class PinnedChannel(GoodChannel):
        account_type = Pinned

    with pytest.raises(KIT_FAILURE, match=r"'endpoint' changed to .* the stored secrets were kept"):
        KIT.test_an_edit_that_moves_the_account_asks_for_its_secrets_again(
            PinnedChannel(), _endpoint_account(Pinned)
        )


def test_destination_fields_must_be_non_secret_fields_of_the_type() -> None:
    class Wrong(EndpointAccount, kw_only=True):
        destination_fields: ClassVar[frozenset[str]] = frozenset({"token", "hostname"})

    class WrongChannel(GoodChannel):
        account_type = Wrong

    assert check_channel_contract(WrongChannel()) == [
        "channel 'memory': destination field 'hostname' is not a field of Wrong",
        "channel 'memory': 'token' is a secret field, so not a destination field",
    ]


def test_check_message_must_be_synchronous() -> None:
    class Awaits(GoodChannel):
        async def check_message(self, message: Any) -> None:  # type: ignore[override]
            return None

    [problem] = check_channel_contract(Awaits())
    assert "check_message() must be synchronous" in problem
