"""Routing RCPT addresses: e-mail, other channels by sub-domain, actions, plugins, refusals."""

from __future__ import annotations

import base64

import aiosmtplib
import msgspec
import pytest

from gateway import hookimpl
from gateway.channel import AccountRef, Channel, ContentKind, Outgoing, Sent
from gateway.config import ConfigError, Settings
from gateway.plugins import Plugins
from gateway.relay.route import Deliver, RoutingTable, Unroutable
from gateway.relay.table import load_table
from tests.gateway_fixtures import unique
from tests.relay_support import PASSWORD, RELAY_DOMAIN, message_ids, start_relay


class PagerAccount(msgspec.Struct):
    token: str = "t"


class PagerChannel(Channel):
    """A text-only channel whose recipients are numbers; it remembers what it was asked to send."""

    name = "pager"
    content_kinds = frozenset({ContentKind.TEXT})
    account_type = PagerAccount

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def check_recipient(self, recipient: str) -> str | None:
        return None if recipient.isdigit() else "a pager number is digits only"

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Sent:
        self.sent.append(outgoing)
        return Sent(provider_id=f"pg-{len(self.sent)}")


class PagerPlugin:
    def __init__(self) -> None:
        self.channel = PagerChannel()

    @hookimpl
    def msggate_channels(self) -> list[Channel]:
        return [self.channel]


class VipRouting:
    """A third-party routing plugin: vip-*@anything goes to the pager, before the built-in."""

    def __init__(self, account: str) -> None:
        self.account = account
        self.calls: list[tuple[str, str, str | None]] = []

    @hookimpl
    def msggate_route_address(
        self, address: str, sender: str, relay_domain: str | None, table: RoutingTable
    ):
        self.calls.append((address, sender, relay_domain))
        local = address.split("@", 1)[0]
        if local.startswith("vip-"):
            return Deliver(channel="pager", account=self.account, recipient=local[4:])
        if local == "blocked":
            return Unroutable(reason="this mailbox is closed")
        return None


@pytest.fixture
async def routed(make_gateway, tmp_path):
    """A relay with the pager channel: real and sandbox pager accounts in the routing table."""
    pager_real, pager_box = unique("pager"), unique("pager-box")
    config = tmp_path / "msggate.toml"
    config.write_text(
        "[relay.routes]\n"
        f'pager = {{ channel = "pager", account = "{pager_real}" }}\n'
        f'box = {{ channel = "pager", account = "{pager_box}" }}\n'
        f'ghost = {{ channel = "pager", account = "{unique("missing")}" }}\n'
    )
    plugin = PagerPlugin()
    vip = VipRouting(pager_real)
    plugins = Plugins.load(extra=[("pager", plugin), ("vip-routing", vip)])
    relay = await start_relay(make_gateway, tmp_path, plugins=plugins, config=str(config))
    for name, body in (
        (pager_real, {"config": {"token": "x"}}),
        (pager_box, {"sandbox": True}),
    ):
        status, created = await relay.gw.post(
            "/api/v1/accounts", {"channel": "pager", "name": name, **body}
        )
        assert status == 201, created
    relay.pager = plugin.channel  # type: ignore[attr-defined]
    relay.pager_box = pager_box  # type: ignore[attr-defined]
    relay.vip = vip  # type: ignore[attr-defined]
    return relay


def alert(subject: str = "disk alert", body: str = "disk 95% full") -> bytes:
    return (
        f"From: app@example.com\r\nTo: ops@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{unique('m')}@example.com>\r\n\r\n{body}\r\n"
    ).encode()


async def test_subdomain_routes_to_another_channels_sandbox_account(routed):
    user = await routed.user()
    code, reply = await routed.send(alert(), [f"13800138000@box.{RELAY_DOMAIN}"], user=user)
    assert code == 250, reply
    [message_id] = message_ids(reply)
    done = await routed.gw.wait_done(message_id)
    assert done["channel"] == "pager" and done["account"] == routed.pager_box
    [recorded] = [
        m for m in await routed.sandbox(routed.pager_box) if m["message_id"] == message_id
    ]
    assert recorded["channel"] == "pager" and recorded["recipient"] == "13800138000"
    assert recorded["subject"] == "disk alert" and recorded["text"] == "disk 95% full\n"


async def test_one_message_to_email_and_pager_becomes_two_messages(routed):
    user = await routed.user()
    code, reply = await routed.send(
        alert(), ["ops@example.com", f"13900139000@pager.{RELAY_DOMAIN}"], user=user
    )
    assert code == 250, reply
    ids = message_ids(reply)
    assert len(ids) == 2
    channels = set()
    for message_id in ids:
        done = await routed.gw.wait_done(message_id)
        channels.add(done["channel"])
        assert done["deliveries"][0]["status"] == "sent"
    assert channels == {"email", "pager"}
    [sent] = [o for o in routed.pager.sent if o.recipient == "13900139000"]
    assert sent.text == "disk 95% full\n" and sent.raw is None  # raw MIME is for e-mail only


async def test_html_only_mail_reaches_a_text_channel_as_text_and_attachments_are_noted(routed):
    user = await routed.user()
    html = "<html><body><h1>告警</h1><p>CPU <b>99%</b></p><script>x()</script></body></html>"
    raw = (
        "From: app@example.com\r\nTo: x@example.com\r\nSubject: cpu\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        "--m\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        f"{base64.b64encode(html.encode()).decode()}\r\n"
        "--m\r\nContent-Type: application/pdf\r\n"
        'Content-Disposition: attachment; filename="report.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{base64.b64encode(b'%PDF' * 100).decode()}\r\n--m--\r\n"
    ).encode()
    code, reply = await routed.send(raw, [f"555@pager.{RELAY_DOMAIN}"], user=user)
    assert code == 250, reply
    [message_id] = message_ids(reply)
    done = await routed.gw.wait_done(message_id)
    assert done["text"] == "告警\n\nCPU 99%\n" and done["html"] is None
    assert done["ingress_detail"]["dropped_attachments"] == [
        {"filename": "report.pdf", "content_type": "application/pdf", "size": 400}
    ]


async def test_a_plugin_route_wins_over_the_builtin_and_sees_the_envelope(routed):
    user = await routed.user()
    code, reply = await routed.send(alert(), ["vip-4242@example.com"], user=user)
    assert code == 250, reply
    [message_id] = message_ids(reply)
    done = await routed.gw.wait_done(message_id)
    assert done["channel"] == "pager"
    assert done["deliveries"][0]["recipient"] == "4242"
    assert ("vip-4242@example.com", "app@example.com", RELAY_DOMAIN) in routed.vip.calls


@pytest.mark.parametrize(
    ("rcpt", "code", "text"),
    [
        (f"notify@action.{RELAY_DOMAIN}", 550, "5.3.0"),
        (f"1380@nowhere.{RELAY_DOMAIN}", 550, "not in the routing table"),
        (f"someone@{RELAY_DOMAIN}", 550, "5.1.1"),
        ("blocked@example.com", 550, "this mailbox is closed"),
        (f"not-a-number@pager.{RELAY_DOMAIN}", 550, "5.1.3"),
        (f"1380@ghost.{RELAY_DOMAIN}", 451, "4.3.5"),
    ],
)
async def test_unroutable_addresses_are_refused_with_a_reason(routed, rcpt, code, text):
    user = await routed.user()
    async with routed.session() as smtp:
        await smtp.login(user, PASSWORD)
        await smtp.mail("app@example.com")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as info:
            await smtp.rcpt(rcpt)
    assert info.value.code == code and text in info.value.message


async def test_action_addresses_are_refused_until_tiered_actions_exist(routed):
    user = await routed.user()
    async with routed.session() as smtp:
        await smtp.login(user, PASSWORD)
        await smtp.mail("app@example.com")
        with pytest.raises(aiosmtplib.SMTPRecipientRefused) as info:
            await smtp.rcpt(f"disk-full@action.{RELAY_DOMAIN}")
    assert "tiered actions are not available yet" in info.value.message


async def test_ordinary_mail_goes_through_the_account_of_the_sender_domain(make_gateway, tmp_path):
    corp = unique("corp-mail")
    config = tmp_path / "msggate.toml"
    config.write_text(f'[relay.sender_accounts]\n"corp.example.cn" = "{corp}"\n')
    relay = await start_relay(make_gateway, tmp_path, config=str(config))
    status, body = await relay.gw.post(
        "/api/v1/accounts", {"channel": "email", "name": corp, "sandbox": True}
    )
    assert status == 201, body
    user = await relay.user()
    for sender, account in (("it@corp.example.cn", corp), ("app@example.com", relay.account)):
        code, reply = await relay.send(alert(), ["ops@example.com"], user=user, sender=sender)
        assert code == 250, reply
        _, detail = await relay.gw.get(f"/api/v1/messages/{message_ids(reply)[0]}")
        assert detail["account"] == account


def test_routing_table_mistakes_name_the_file_and_field(tmp_path):
    config = tmp_path / "bad.toml"
    for text, field in (
        ('[relay.routes]\nsms = { channel = "sms" }\n', "relay.routes.sms.account"),
        ('[relay.routes]\nSMS = { channel = "sms", account = "a" }\n', "relay.routes.SMS"),
        ("[relay]\nroutes = 3\n", "relay.routes"),
        ('[relay.routes]\naction = { channel = "sms", account = "a" }\n', "relay.routes.action"),
        ("[relay\n", "not valid TOML"),
    ):
        config.write_text(text)
        with pytest.raises(ConfigError, match="MSGGATE_CONFIG") as info:
            load_table(Settings(config=str(config)))
        assert field in str(info.value)
