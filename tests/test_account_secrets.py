"""A stored secret never goes to a new destination: an edit that changes where an account's
secrets are sent (host, port, TLS, endpoint, region ...) must give every stored secret again.

The unit tests hold each built-in account type's declarations to the rule; the API tests store
an account of every built-in channel and PATCH its destination to a real listening socket that
records connections: the masked secret is refused with 422 naming it, and nothing connects.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar
from urllib.parse import urlsplit

import msgspec
import pytest

from gateway import hookimpl
from gateway.accounts import MASK, SecretRequired, kept_secrets_check
from gateway.channel import (
    AccountInvalid,
    Channel,
    ContentKind,
    Sent,
    destination_fields,
    secret_fields,
)
from gateway.plugins import Plugins
from tests.connection_recorder import recording
from tests.gateway_fixtures import unique

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

# A working config of each built-in channel's account type, every secret set.
SAMPLES: dict[str, dict[str, Any]] = {
    "email": {
        "host": "127.0.0.1",
        "port": 587,
        "tls": "starttls",
        "username": "ops@example.com",
        "password": "smtp-pass-0001",
        "from": "ops@example.com",
    },
    "sms": {
        "access_key_id": "LTAI-test",
        "access_key_secret": "aliyun-secret-0001",
        "sign_name": "阿里云",
        "endpoint": "http://127.0.0.1:9/sms",
        "receipt_token": "receipt-token-0001",
    },
    "voice": {
        "access_key_id": "LTAI-test",
        "access_key_secret": "aliyun-secret-0002",
        "endpoint": "http://127.0.0.1:9/vms",
    },
    "outbound": {
        "access_key_id": "LTAI-test",
        "access_key_secret": "aliyun-secret-0003",
        "company_name": "测试公司",
        "caller_number": "057100000000",
        "endpoint": "http://127.0.0.1:9/ob",
    },
    "wecom": {
        "corpid": "ww-test",
        "corpsecret": "wecom-secret-0001",
        "agentid": 1000002,
        "endpoint": "http://127.0.0.1:9",
    },
    "wecom_robot": {"key": "wecom-robot-key-0001", "endpoint": "http://127.0.0.1:9"},
    "dingtalk": {
        "appkey": "ding-app",
        "appsecret": "ding-secret-0001",
        "agent_id": 1,
        "endpoint": "http://127.0.0.1:9",
    },
    "dingtalk_robot": {
        "access_token": "ding-token-0001",
        "secret": "SEC-ding-0001",
        "endpoint": "http://127.0.0.1:9",
    },
    "welink": {
        "client_id": "welink-app",
        "client_secret": "welink-secret-0001",
        "endpoint": "http://127.0.0.1:9/welink",
    },
}

# Each destination field of each built-in type, changed to another valid value.
MOVES: dict[str, dict[str, Any]] = {
    "email": {
        "host": "smtp.elsewhere.example",
        "port": 2525,
        "tls": "tls",
        "ca_cert": PEM,
        "verify_tls": False,
        "allow_insecure_auth": True,
    },
    "sms": {"endpoint": "https://elsewhere.example/sms", "region": "cn-shanghai"},
    "voice": {"endpoint": "https://elsewhere.example/vms", "region": "cn-shanghai"},
    "outbound": {
        "endpoint": "https://elsewhere.example/ob",
        "region": "cn-shanghai",
        "api": "aiccs",
    },
    "wecom": {"endpoint": "https://elsewhere.example"},
    "wecom_robot": {"endpoint": "https://elsewhere.example"},
    "dingtalk": {"endpoint": "https://elsewhere.example"},
    "dingtalk_robot": {"endpoint": "https://elsewhere.example"},
    "welink": {"endpoint": "https://elsewhere.example/welink"},
}

# A change that does not move the secrets, per type.
STAYS: dict[str, dict[str, Any]] = {
    "email": {"from": "Ops <ops@example.com>", "timeout": 20.0, "username": "other@example.com"},
    "sms": {"sign_name": "测试签名", "timeout": 5.0},
    "voice": {"called_show_number": "057112345678"},
    "outbound": {"company_name": "另一家公司"},
    "wecom": {"agentid": 1000003, "corpid": "ww-other"},
    "wecom_robot": {"timeout": 5.0},
    "dingtalk": {"agent_id": 2},
    "dingtalk_robot": {"per_minute": 10},
    "welink": {"msg_owner": "考勤"},
}


@pytest.fixture(scope="module")
def channels() -> dict[str, Channel]:
    """The built-in channels (an installed example plugin is tested in its own suite)."""
    loaded = Plugins.load().channels
    return {n: c for n, c in loaded.items() if type(c).__module__.startswith("plugins.")}


def _stored(channel: Channel) -> dict[str, Any]:
    return msgspec.to_builtins(msgspec.convert(SAMPLES[channel.name], channel.account_type))


def _edit(channel: Channel, stored: dict[str, Any], changes: dict[str, Any]) -> Any:
    return msgspec.convert({**stored, **changes}, channel.account_type)


def test_every_built_in_channel_has_samples(channels):
    assert set(SAMPLES) == set(MOVES) == set(STAYS) == set(channels)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_destination_field_of_a_built_in_type_asks_for_every_stored_secret(channels, name):
    channel = channels[name]
    stored = _stored(channel)
    held = sorted(k for k in secret_fields(channel.account_type) if stored.get(k))
    assert held, "the sample must hold a secret"
    assert set(MOVES[name]) == destination_fields(channel.account_type)
    for field, value in MOVES[name].items():
        if field == "api":  # RobotCall (aiccs) takes one caller number, as the sample has
            assert "," not in stored["caller_number"]
        edited = _edit(channel, stored, {field: value})
        with pytest.raises(SecretRequired) as refused:
            kept_secrets_check(channel.account_type, stored, edited, given=set())
        assert sorted(refused.value.secrets) == held, field
        assert refused.value.changed == [field]
        assert refused.value.field == f"config.{refused.value.secrets[0]}"
        assert refused.value.status == 422
        # every secret given again (or cleared): the move is allowed
        kept_secrets_check(channel.account_type, stored, edited, given=set(held))


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_changes_that_do_not_move_a_built_in_account_keep_its_secrets(channels, name):
    channel = channels[name]
    stored = _stored(channel)
    kept_secrets_check(channel.account_type, stored, _edit(channel, stored, {}), given=set())
    for field, value in STAYS[name].items():
        assert field not in destination_fields(channel.account_type)
        edited = _edit(channel, stored, {field: value})
        kept_secrets_check(channel.account_type, stored, edited, given=set())


def test_one_secret_given_again_is_not_enough_when_another_is_kept(channels):
    channel = channels["sms"]
    stored = _stored(channel)
    edited = _edit(channel, stored, {"endpoint": "https://elsewhere.example/sms"})
    with pytest.raises(SecretRequired) as refused:
        kept_secrets_check(channel.account_type, stored, edited, given={"access_key_secret"})
    assert refused.value.secrets == ["receipt_token"]


def test_a_normalised_destination_is_not_a_change(channels):
    channel = channels["wecom"]
    stored = _stored(channel)
    edited = _edit(channel, stored, {"endpoint": stored["endpoint"] + "/"})  # stripped on decode
    kept_secrets_check(channel.account_type, stored, edited, given=set())


# -- over the API, against a real listening socket --------------------------------------------


async def _store(gateway, channel: Channel, name: str) -> None:
    """Store an account as a save would (secrets sealed), without asking a provider."""
    plain = _stored(channel)
    secrets = {k: plain.pop(k) for k in secret_fields(channel.account_type) if k in plain}
    secrets = {k: v for k, v in secrets.items() if v is not None}
    box = gateway.services.accounts.box
    await gateway.services.store.insert_account(channel.name, name, False, plain, box.seal(secrets))


def _towards(name: str, port: int) -> dict[str, Any]:
    """The change that points a sample account at 127.0.0.1:``port``."""
    if name == "email":
        return {"port": port}
    path = urlsplit(SAMPLES[name]["endpoint"]).path
    return {"endpoint": f"http://127.0.0.1:{port}{path}"}


@pytest.mark.parametrize("name", sorted(SAMPLES))
async def test_patch_moving_a_built_in_account_with_its_secret_masked_is_422_and_connects_nowhere(
    gateway, name
):
    channel = gateway.services.plugins.channel(name)
    account = unique(name)
    await _store(gateway, channel, account)
    secrets = sorted(k for k in secret_fields(channel.account_type) if SAMPLES[name].get(k))
    async with recording() as attacker:
        masked = {k: MASK for k in secrets}
        for changes in ({**_towards(name, attacker.port), **masked}, _towards(name, attacker.port)):
            status, body = await gateway.request(
                "PATCH", f"/api/v1/accounts/{account}", json={"config": changes}
            )
            assert status == 422, body
            assert body["error"]["code"] == "secret_required", body
            assert body["error"]["field"] in {f"config.{k}" for k in secrets}, body
            assert all(k in body["error"]["message"] for k in secrets), body
        assert attacker.connections == 0
        status, view = await gateway.get(f"/api/v1/accounts/{account}")
        plain = {
            k: v
            for k, v in _stored(channel).items()
            if k not in secret_fields(channel.account_type)
        }
        assert view["revision"] == 1 and view["config"] == {**plain, **masked}
        # the control: with every secret given again the save does go there (and fails)
        entered = {k: SAMPLES[name][k] for k in secrets}
        status, body = await gateway.request(
            "PATCH",
            f"/api/v1/accounts/{account}",
            json={"config": {**_towards(name, attacker.port), **entered}},
        )
        assert status == 422 and body["error"]["code"] != "secret_required", body
        assert attacker.connections >= 1


# -- a third party's account type that declares no destination fields -------------------------


class UndeclaredAccount(msgspec.Struct, kw_only=True):
    """Declares its secret but not where it goes: every other field counts as a destination."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})
    url: str
    token: str
    label: str = "x"


class UndeclaredChannel(Channel):
    """Its check connects to ``url`` (as a real one would, with the token)."""

    name = "undeclared"
    content_kinds = frozenset({ContentKind.TEXT})
    account_type = UndeclaredAccount

    async def send(self, account, outgoing):
        return Sent()

    async def validate_account(self, account):
        parts = urlsplit(account.config.url)
        try:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            await asyncio.wait_for(reader.read(), 10)  # the recorder hangs up once it counted
        except (OSError, TimeoutError) as exc:
            raise AccountInvalid(f"cannot connect: {exc!r}", "url") from None
        writer.close()


class UndeclaredPlugin:
    @hookimpl
    def msggate_channels(self):
        return [UndeclaredChannel()]


def test_an_account_type_that_declares_nothing_treats_every_other_field_as_a_destination():
    assert destination_fields(UndeclaredAccount) == {"url", "label"}


async def test_undeclared_plugin_account_moved_with_its_masked_secret_is_refused(make_gateway):
    gw = await make_gateway(plugins=Plugins.load(extra=[("undeclared", UndeclaredPlugin())]))
    name = unique("undeclared")
    async with recording() as home, recording() as attacker:
        config = {"url": home.url, "token": "plugin-token-0001"}
        status, body = await gw.post(
            "/api/v1/accounts", {"channel": "undeclared", "name": name, "config": config}
        )
        assert status == 201, body
        for changes in ({"url": attacker.url, "token": MASK}, {"label": "y"}):
            status, body = await gw.request(
                "PATCH", f"/api/v1/accounts/{name}", json={"config": changes}
            )
            assert status == 422, body
            assert body["error"] == {
                "code": "secret_required",
                "message": body["error"]["message"],
                "field": "config.token",
            }
        assert attacker.connections == 0
        status, body = await gw.request(
            "PATCH",
            f"/api/v1/accounts/{name}",
            json={"config": {"url": attacker.url, "token": "plugin-token-0002"}},
        )
        assert status == 200, body
        assert attacker.connections == 1
