"""The plugin system: documented hooks, entry-point loading, rejected plugins, and each hook live.

Third-party plugins here are real distributions: a package and its ``.dist-info`` written into
``tmp_path`` and put on ``sys.path``, found by ``importlib.metadata`` like any installed one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import importlib.metadata
import inspect
import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import asyncpg
import pytest

import gateway
from gateway import hookimpl, hookspecs
from gateway.channel import AccountRef, Channel, ContentKind, Failed, Outgoing, Sent
from gateway.events import DeliveryEvent
from gateway.plugins import ENTRY_POINT_GROUP, PluginConflict, Plugins
from gateway.testing import check_channel_contract
from plugins.email.channel import EmailChannel
from tests.gateway_fixtures import unique

TESTS = Path(__file__).parent

HOOKS = sorted(
    name
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if hasattr(function, "msggate_spec")
)

ECHO_MODULE = '''
"""A third-party channel that answers every send with its own text."""
import msgspec

from gateway import hookimpl
from gateway.channel import AccountInvalid, Channel, ContentKind, Sent

RECEIVED = []


class EchoAccount(msgspec.Struct):
    token: str
    secret_fields = frozenset({"token"})


class EchoChannel(Channel):
    name = "echo"
    content_kinds = frozenset({ContentKind.TEXT})
    account_type = EchoAccount
    unit = "echo"

    async def send(self, account, outgoing):
        RECEIVED.append((account.name, outgoing.recipient, outgoing.text))
        return Sent(provider_id=f"echo-{len(RECEIVED)}", answer=outgoing.text)

    async def validate_account(self, account):
        if account.config.token != "good-token":
            raise AccountInvalid("the echo provider refuses this token", field="token")


@hookimpl
def msggate_channels():
    return [EchoChannel()]
'''


# --- real distributions on sys.path -----------------------------------------------------------


class Site:
    """A directory on ``sys.path`` into which tests install tiny distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def install(
        self, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]
    ) -> None:
        for module, source in modules.items():
            (self.root / f"{module}.py").write_text(textwrap.dedent(source))
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}")
        importlib.invalidate_caches()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``tmp_path`` on ``sys.path``; the modules imported from it are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield Site(tmp_path)
    for name in set(sys.modules) - before:
        if name.startswith("msggate_test"):
            del sys.modules[name]


@pytest.fixture
def echo_site(site: Site) -> Site:
    site.install(
        "msggate-testecho",
        "1.0",
        {"testecho": "msggate_testecho"},
        {"msggate_testecho": ECHO_MODULE},
    )
    return site


# --- in-process test plugins ------------------------------------------------------------------


def make_channel(channel_name: str) -> Channel:
    import msgspec

    class Account(msgspec.Struct):
        token: str = "t"

    class Simple(Channel):
        name = channel_name
        content_kinds = frozenset({ContentKind.TEXT})
        account_type = Account

        async def send(self, account: AccountRef, outgoing: Outgoing) -> Sent:
            return Sent()

    return Simple()


class Provides:
    def __init__(self, *channels: Channel) -> None:
        self.channels = list(channels)

    @hookimpl
    def msggate_channels(self) -> list[Channel]:
        return self.channels


# --- the hooks are the manual ------------------------------------------------------------------


def test_hookspecs_module_declares_hooks() -> None:
    core = {
        "msggate_channels",
        "msggate_delivery_event",
        "msggate_filter_outgoing",
        "msggate_callback_routes",
        "msggate_fake_providers",
    }
    assert core <= set(HOOKS)
    assert all(name.startswith("msggate_") for name in HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_and_typed(name: str) -> None:
    spec = getattr(hookspecs, name)
    doc = inspect.getdoc(spec) or ""
    summary, _, body = doc.partition("\n\n")
    assert summary.strip() and len(body.split()) >= 20, f"{name}: document when, what, returns"
    signature = inspect.signature(spec)
    assert signature.return_annotation is not inspect.Signature.empty, f"{name}: return type"
    for param in signature.parameters.values():
        assert param.annotation is not inspect.Parameter.empty, f"{name}({param.name}): type"
        assert re.search(rf"\b{param.name}\b", doc), f"{name}: argument {param.name} undocumented"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_implemented_by_a_test(name: str) -> None:
    implemented = re.compile(rf"^\s*def {name}\(", re.MULTILINE)
    files = [p for p in TESTS.rglob("test_*.py") if implemented.search(p.read_text())]
    assert files, f"no test implements {name}: every hook needs a test"


# --- loading through entry points ---------------------------------------------------------------


def test_builtin_email_plugin_loads_through_the_entry_point_group() -> None:
    [ep] = [
        e for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if e.name == "email"
    ]
    assert ep.value == "plugins.email.plugin"
    plugins = Plugins.load()
    assert plugins.problems == []
    [info] = [i for i in plugins.describe() if i.name == "email"]
    assert (info.distribution, info.version, info.channels) == (
        "msggate",
        gateway.__version__,
        ["email"],
    )
    assert isinstance(plugins.channel("email"), EmailChannel)
    assert "email" not in Plugins.load(entry_points=False).channels  # nothing hardwired


def test_third_party_plugin_is_found_through_its_entry_point(echo_site: Site) -> None:
    plugins = Plugins.load()
    assert plugins.problems == []
    [info] = [i for i in plugins.describe() if i.name == "testecho"]
    assert (info.distribution, info.version, info.channels) == ("msggate-testecho", "1.0", ["echo"])
    assert {"echo", "email"} <= set(plugins.channels)
    assert check_channel_contract(plugins.channel("echo")) == []


async def test_third_party_channel_delivers_a_message_end_to_end(echo_site: Site, make_gateway):
    gw = await make_gateway(plugins=Plugins.load())
    account = unique("echo")
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "echo", "name": account, "config": {"token": "bad"}}
    )
    assert status == 422 and body["error"]["field"] == "config.token", body
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "echo", "name": account, "config": {"token": "good-token"}}
    )
    assert status == 201, body
    assert body["config"]["token"] != "good-token"  # a declared secret is masked
    accepted = await gw.send(channel="echo", account=account, recipients=["ada"], text="ping")
    done = await gw.wait_done(accepted["id"])
    [delivery] = done["deliveries"]
    assert delivery["status"] == "sent" and delivery["provider_id"].startswith("echo-")
    echo = sys.modules["msggate_testecho"]
    assert [(account, "ada", "ping")] == echo.RECEIVED


# --- plugins that are refused -------------------------------------------------------------------


def test_plugin_that_fails_to_import_is_reported_and_the_rest_load(site: Site) -> None:
    site.install(
        "msggate-testmixed",
        "2.0",
        {"testbroken": "msggate_testbroken", "testfine": "msggate_testfine"},
        {
            "msggate_testbroken": "raise ImportError(\"No module named 'feishu_sdk'\")\n",
            "msggate_testfine": ECHO_MODULE.replace('name = "echo"', 'name = "fine"'),
        },
    )
    plugins = Plugins.load()
    [problem] = plugins.problems
    assert problem.plugin == "testbroken"
    assert "failed to import" in problem.reason and "feishu_sdk" in problem.reason
    assert {"email", "fine"} <= set(plugins.channels)
    assert "testbroken" not in [i.name for i in plugins.describe()]


def test_plugin_with_misspelt_hook_is_rejected_by_check_pending() -> None:
    class Misspelt:
        @hookimpl
        def msggate_channel(self) -> list[Channel]:  # the hook is msggate_channels
            return [make_channel("misspelt")]

    plugin = Misspelt()
    plugins = Plugins.load(extra=[("misspelt", plugin)])
    [problem] = plugins.problems
    assert problem.plugin == "misspelt" and "msggate_channel" in problem.reason
    assert not plugins.pm.is_registered(plugin)
    assert "misspelt" not in plugins.channels and "email" in plugins.channels


def test_plugin_with_a_hook_argument_the_spec_lacks_is_rejected() -> None:
    class WrongArgument:
        @hookimpl
        def msggate_filter_outgoing(self, delivery: Outgoing) -> None:  # the spec has outgoing
            return None

    plugins = Plugins.load(extra=[("wrongarg", WrongArgument())], entry_points=False)
    [problem] = plugins.problems
    assert problem.plugin == "wrongarg" and "delivery" in problem.reason
    assert plugins.describe() == []


def test_channel_breaking_the_contract_is_reported_and_not_registered() -> None:
    class NoAccountType(Channel):
        name = "noaccount"
        content_kinds = frozenset({ContentKind.TEXT})

        async def send(self, account: AccountRef, outgoing: Outgoing) -> Sent:
            return Sent()

    channel = NoAccountType()
    plugins = Plugins.load(extra=[("sloppy", Provides(channel))], entry_points=False)
    [problem] = plugins.problems
    assert problem.plugin == "sloppy" and "account_type" in problem.reason
    assert "noaccount" not in plugins.channels
    assert problem.reason in check_channel_contract(channel)


def test_two_plugins_with_the_same_channel_name_conflict_naming_both() -> None:
    with pytest.raises(PluginConflict) as conflict:
        Plugins.load(
            extra=[
                ("first-twin", Provides(make_channel("twin"))),
                ("second-twin", Provides(make_channel("twin"))),
            ],
            entry_points=False,
        )
    assert "'twin'" in str(conflict.value)
    assert "first-twin" in str(conflict.value) and "second-twin" in str(conflict.value)


def test_third_party_channel_named_like_a_builtin_conflicts() -> None:
    with pytest.raises(PluginConflict, match=r"'email'.*'impostor'"):
        Plugins.load(extra=[("impostor", Provides(make_channel("email")))])


# --- msggate_filter_outgoing --------------------------------------------------------------------


class BlockList:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    @hookimpl
    def msggate_filter_outgoing(
        self, channel: str, account: str, outgoing: Outgoing
    ) -> Failed | None:
        self.seen.append((channel, account, outgoing.recipient))
        if "blocked" in outgoing.recipient:
            return Failed(reason="recipient is on the block list", code="blocked")
        return None


async def test_filter_outgoing_fails_blocked_recipients_and_lets_others_through(make_gateway):
    blocklist = BlockList()
    gw = await make_gateway(plugins=Plugins.load(extra=[("blocklist", blocklist)]))
    account = unique("sb")
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "email", "name": account, "sandbox": True}
    )
    assert status == 201, body
    accepted = await gw.send(
        channel="email",
        account=account,
        recipients=["ok@example.com", "blocked@example.com"],
        subject="hello",
        text="hi",
    )
    done = await gw.wait_done(accepted["id"])
    by_recipient = {d["recipient"]: d for d in done["deliveries"]}
    blocked, ok = by_recipient["blocked@example.com"], by_recipient["ok@example.com"]
    assert blocked["status"] == "failed" and blocked["attempts"] == 1
    assert (blocked["last_error"], blocked["last_code"]) == (
        "recipient is on the block list",
        "blocked",
    )
    assert ok["status"] == "sent"
    assert sorted(blocklist.seen) == [
        ("email", account, "blocked@example.com"),
        ("email", account, "ok@example.com"),
    ]
    status, sandbox = await gw.get("/api/v1/sandbox/messages", params={"account": account})
    assert status == 200
    assert [m["recipient"] for m in sandbox["items"]] == ["ok@example.com"]  # never reached


# --- msggate_delivery_event ---------------------------------------------------------------------


def committed_status(database_url: str, delivery_id: str) -> str | None:
    """The delivery's status as another connection sees it, i.e. what has been committed."""

    async def fetch() -> str | None:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetchval(
                "SELECT status FROM deliveries WHERE id = $1", uuid.UUID(delivery_id)
            )
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # the hook is sync: ask from a thread
        return pool.submit(lambda: asyncio.run(fetch())).result(timeout=10)


class Recorder:
    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url
        self.events: list[DeliveryEvent] = []
        self.committed: dict[str, str | None] = {}

    @hookimpl
    def msggate_delivery_event(self, event: DeliveryEvent) -> None:
        self.events.append(event)
        if self.database_url and event.kind == "sent":
            self.committed[event.delivery_id] = committed_status(
                self.database_url, event.delivery_id
            )


class Exploding:
    @hookimpl
    def msggate_delivery_event(self, event: DeliveryEvent) -> None:
        raise RuntimeError("observer bug")


async def sandbox_account(gw) -> str:
    account = unique("sb")
    status, body = await gw.post(
        "/api/v1/accounts", {"channel": "email", "name": account, "sandbox": True}
    )
    assert status == 201, body
    return account


async def test_delivery_event_observer_gets_sent_with_its_delivery_after_commit(
    make_gateway, database_url
):
    recorder = Recorder(database_url)
    gw = await make_gateway(plugins=Plugins.load(extra=[("recorder", recorder)]))
    account = await sandbox_account(gw)
    accepted = await gw.send(
        channel="email", account=account, recipients=["a@example.com"], text="hi"
    )
    [delivery] = accepted["deliveries"]
    await gw.wait_done(accepted["id"])
    [sent] = [e for e in recorder.events if e.kind == "sent"]
    assert (sent.delivery_id, sent.message_id) == (delivery["id"], accepted["id"])
    assert sent.detail["provider_id"] == f"sandbox:{delivery['id']}"
    assert recorder.committed == {delivery["id"]: "sent"}  # durable when the observer ran


async def test_delivery_event_observer_that_raises_breaks_neither_delivery_nor_others(
    make_gateway, caplog
):
    recorder = Recorder()
    plugins = Plugins.load(extra=[("recorder", recorder), ("exploding", Exploding())])
    gw = await make_gateway(plugins=plugins)
    account = await sandbox_account(gw)
    accepted = await gw.send(
        channel="email", account=account, recipients=["a@example.com", "b@example.com"], text="x"
    )
    done = await gw.wait_done(accepted["id"])
    assert [d["status"] for d in done["deliveries"]] == ["sent", "sent"]
    sent = sorted(e.delivery_id for e in recorder.events if e.kind == "sent")
    assert sent == sorted(d["id"] for d in accepted["deliveries"])
    assert "observer bug" in caplog.text


# --- msggate plugins ----------------------------------------------------------------------------


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_msggate_plugins_command_lists_email() -> None:
    result = run_cli("plugins")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"email\tmsggate {gateway.__version__}\tchannels: email" in lines


def test_msggate_plugins_command_lists_third_party_and_disabled_plugins(site: Site) -> None:
    site.install(
        "msggate-testecho",
        "1.0",
        {"testecho": "msggate_testecho", "testbroken": "msggate_testbroken"},
        {"msggate_testecho": ECHO_MODULE, "msggate_testbroken": "raise ImportError('nope')\n"},
    )
    result = run_cli("plugins", env={"PYTHONPATH": str(site.root)})
    assert result.returncode == 1  # a disabled plugin is worth a non-zero exit
    lines = result.stdout.splitlines()
    assert "testecho\tmsggate-testecho 1.0\tchannels: echo" in lines
    assert any(line.startswith("testbroken\tDISABLED\t") for line in lines), lines
