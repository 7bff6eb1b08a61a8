"""Shared set-up for the tests of the channels on Alibaba Cloud's communication products (SMS
and voice): a fake product on a real socket, the checks every such channel must pass against
it (:class:`AliyunChannelCases`), the conformance kit's fixtures (:class:`AliyunConformance`),
a gateway with an account on the fake for the end-to-end receipt tests (:class:`Product`), and
the signature test vector the signer and the fakes are both checked against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec
import pytest

from gateway.channel import AccountInvalid, AccountRef, Failed, Outgoing, Retry
from gateway.plugins import Plugins
from gateway.testing import Cases, ChannelConformance, OutgoingFor, RunningGateway, outgoing
from plugins.aliyun.fake import Fault
from plugins.aliyun.fake_product import FakeProduct

# docs/providers.md §4.3 Vector C: BatchRobotSmartCall, POST, CJK and JSON parameters (signed
# with the secret "testSecret": Signature vEAQedtMxHy9N1V7Uqo42TR4rkw=)
VECTOR_C = {
    "AccessKeyId": "testId",
    "Action": "BatchRobotSmartCall",
    "CalledNumber": "13900000000,13900000001",
    "CalledShowNumber": "057100000000",
    "CorpName": "示例科技有限公司",
    "DialogId": "1000001234",
    "Format": "JSON",
    "RegionId": "cn-hangzhou",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "c0ffee00-0000-4000-8000-000000000001",
    "SignatureVersion": "1.0",
    "TaskName": "alert-42",
    "Timestamp": "2024-01-02T03:04:05Z",
    "TtsParam": '[{"number":"13900000000","params":["张三"]},'
    '{"number":"13900000001","params":["李四"]}]',
    "TtsParamHead": '["name"]',
    "Version": "2017-05-25",
}


@dataclass
class Served:
    """A fake product (its state) served on a real socket at ``url``."""

    state: Any
    url: str


class AliyunChannelCases:
    """What every channel on a communication product does against its fake.

    A test class sets the product's particulars below (``ref`` and ``outgoing`` as
    ``staticmethod`` of its module's builders), and its module gives the fixtures ``channel``
    and ``fake`` (a :class:`Served`).
    """

    ref: Callable[..., AccountRef]  # (fake, **config overrides) -> the test account
    outgoing: Callable[..., Outgoing]  # ([template], **fields) -> a delivery to the test number
    placed_attr: ClassVar[str]  # the fake's list of what it sent (messages, calls)
    action: ClassVar[str]  # the send action (SendSms)
    template_word: ClassVar[str]  # what the refusal of a message without a template names
    bad_template: ClassVar[str]  # a template the fake does not know ...
    bad_template_code: ClassVar[str]  # ... and the code the provider answers for it
    channel_name: ClassVar[str]
    unit: ClassVar[str]
    fake_name: ClassVar[str]
    secret: ClassVar[str]

    def placed(self, fake: Served) -> list:
        return getattr(fake.state, self.placed_attr)

    async def test_message_without_a_template_fails_before_calling(self, channel, fake):
        outcome = await channel.send(self.ref(fake), self.outgoing(None, text="hello"))
        assert isinstance(outcome, Failed) and self.template_word in outcome.reason
        assert fake.state.gateway.received == []

    async def test_missing_variable_of_a_known_template_fails_before_calling(self, channel, fake):
        outcome = await channel.send(self.ref(fake), self.outgoing(variables={"name": "王五"}))
        assert isinstance(outcome, Failed) and "content" in outcome.reason
        assert fake.state.gateway.received == []

    async def test_wrong_secret_gets_signature_does_not_match_from_the_fake(self, channel, fake):
        account = self.ref(fake, access_key_secret="not-the-secret-0123")
        sent = self.outgoing()
        outcome = await channel.send(account, sent)
        assert isinstance(outcome, Failed) and outcome.code == "SignatureDoesNotMatch"
        assert "string to sign" not in outcome.reason and sent.recipient not in outcome.reason
        assert fake.state.gateway.refusals == [("SignatureDoesNotMatch", self.action)]
        assert self.placed(fake) == []

    async def test_blocked_content_is_failed(self, channel, fake):
        variables = {"name": "x", "content": "违禁品"}
        outcome = await channel.send(self.ref(fake), self.outgoing(variables=variables))
        assert isinstance(outcome, Failed) and outcome.code == "isv.BLACK_KEY_CONTROL_LIMIT"

    async def test_bad_template_is_a_config_failure_naming_the_template(self, channel, fake):
        outcome = await channel.send(self.ref(fake), self.outgoing(self.bad_template))
        assert isinstance(outcome, Failed) and outcome.code == self.bad_template_code
        assert "not approved" in outcome.reason

    @pytest.mark.parametrize("status", [500, 503])
    async def test_server_errors_are_retried(self, channel, fake, status):
        fake.state.gateway.inject(Fault(status=status))
        outcome = await channel.send(self.ref(fake), self.outgoing())
        assert isinstance(outcome, Retry) and outcome.code == str(status)

    async def test_slow_answer_is_unknown_and_not_sent_again(self, channel, fake):
        fake.state.gateway.inject(Fault(delay=1.5))
        outcome = await channel.send(self.ref(fake, timeout=1.0), self.outgoing())
        assert isinstance(outcome, Failed) and outcome.code == "unknown"

    @pytest.mark.parametrize(
        ("overrides", "field", "code"),
        [
            (
                {"access_key_secret": "wrong-secret-0123456"},
                "access_key_secret",
                "SignatureDoesNotMatch",
            ),
            ({"access_key_id": "LTAI5tNobody"}, "access_key_id", "InvalidAccessKeyId.NotFound"),
        ],
    )
    async def test_validate_account_refuses_bad_credentials_naming_the_field(
        self, channel, fake, overrides, field, code
    ):
        with pytest.raises(AccountInvalid) as raised:
            await channel.validate_account(self.ref(fake, **overrides))
        assert raised.value.field == field and code in raised.value.reason
        assert self.secret not in raised.value.reason

    def test_plugin_loads_through_the_entry_point_group(self, channel):
        plugins = Plugins.load()
        loaded = plugins.channel(self.channel_name)
        assert isinstance(loaded, type(channel)) and loaded.unit == self.unit
        prefix = f"/{self.channel_name}/aliyun/"
        assert any(r.path.startswith(prefix) for r in plugins.callback_routes())
        assert self.fake_name in [f.name for f in plugins.fake_providers()]


class AliyunConformance(ChannelConformance):
    """The conformance kit against a fake product; faults are set by number (``number_param``
    names the action's parameter), so they hold whatever order the kit sends in.

    A test class sets ``channel_type``, ``account_for`` (a ``staticmethod`` making the account
    ``(fake url, name, secret)``), ``secret`` and ``wrong_secret``, ``number`` (the recipient
    that works), ``message`` (the fields of every delivery), ``retry_faults`` (case name →
    (number, Fault)), an ``invalid_number``, a ``content_number`` for content faults, a
    ``slow_number`` and a ``bad_template``, and gives the ``fake`` fixture (a :class:`Served`).
    """

    send_timeout = 15.0
    account_for: Callable[[str, str, str], AccountRef]
    secret: ClassVar[str]
    wrong_secret: ClassVar[str]
    number: ClassVar[str]
    message: ClassVar[dict[str, Any]]
    number_param: ClassVar[str]
    retry_faults: ClassVar[dict[str, tuple[str, Fault]]]
    invalid_number: ClassVar[str]
    content_number: ClassVar[str]
    slow_number: ClassVar[str]
    bad_template: ClassVar[str]
    blocked: ClassVar[dict[str, str]] = {"name": "张三", "content": "违禁品"}

    @pytest.fixture
    def account(self, fake: Served) -> AccountRef:
        return self.account_for(fake.url, "conformance", self.secret)

    @pytest.fixture
    def bad_account(self, fake: Served) -> AccountRef:
        return self.account_for(fake.url, "conformance-bad", self.wrong_secret)

    @pytest.fixture
    def recipient(self) -> str:
        return self.number

    @pytest.fixture
    def outgoing_for(self) -> OutgoingFor:
        return lambda recipient: outgoing(recipient, **self.message)

    @pytest.fixture
    def retry_outgoing(self, fake: Served, outgoing_for: OutgoingFor) -> Cases:
        """Temporary faults, arranged by number: throttling, flow control, 5xx, system error."""
        for number, fault in self.retry_faults.values():
            fault = msgspec.structs.replace(fault, when={self.number_param: number}, times=None)
            fake.state.gateway.inject(fault)
        return {name: outgoing_for(number) for name, (number, _) in self.retry_faults.items()}

    @pytest.fixture
    def failed_outgoing(self, fake: Served, outgoing_for: OutgoingFor) -> Cases:
        """Permanent faults: an invalid number, blocked content, a template not approved."""
        fake.state.illegal_numbers.add(self.invalid_number)
        base = outgoing_for(self.content_number)
        return {
            "invalid number": outgoing_for(self.invalid_number),
            "blocked content": msgspec.structs.replace(base, variables=self.blocked),
            "bad template": msgspec.structs.replace(base, template=self.bad_template),
        }

    @pytest.fixture
    def slow_outgoing(self, fake: Served, outgoing_for: OutgoingFor) -> Cases:
        when = {self.number_param: self.slow_number}
        fake.state.gateway.inject(Fault(delay=1.0, when=when, times=None))
        return outgoing_for(self.slow_number)


def product_outgoing(
    recipient: str, template: str | None, usual: dict[str, Any], **fields: Any
) -> Outgoing:
    """One delivery of a template message, with the ``usual`` variables unless ``fields``
    give others."""
    fields.setdefault("variables", usual)
    return outgoing(recipient, template=template, **fields)


@dataclass
class Product:
    """A gateway with an account on a fake product (for the end-to-end receipt tests)."""

    channel: str
    fake: FakeProduct
    url: str  # the fake's base URL: an account's endpoint
    gw: RunningGateway
    account: str
    token: str
    template: str
    variables: dict[str, Any] = field(default_factory=dict)

    def callback(self, token: str | None = None, account: str | None = None) -> str:
        """The receipt URL of ``account`` (this one) with ``token`` (its own)."""
        name = account or self.account
        return f"{self.gw.url}/callbacks/{self.channel}/aliyun/{name}/{token or self.token}"

    async def send(self, *recipients: str, **extra: Any) -> dict:
        """Send the template message to ``recipients``; the message once every delivery is
        sent or failed."""
        accepted = await self.gw.send(
            channel=self.channel,
            account=self.account,
            recipients=list(recipients),
            template=self.template,
            variables=self.variables,
            **extra,
        )
        return await self.gw.wait_done(accepted["id"])
