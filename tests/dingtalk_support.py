"""Shared set-up for the DingTalk tests: a fake DingTalk on a real socket (the ``dingtalk``
fixture, registered in ``tests/conftest.py``), accounts, messages."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from gateway.channel import AccountRef, Outgoing
from plugins.dingtalk import fake
from plugins.dingtalk.account import AppAccount, RobotAccount
from plugins.dingtalk.fake_state import FakeDingTalk

ROBOT_TOKEN = "robot-token-5f0c2a9e7d1b"
ROBOT_SECRET = "SECb7f1e2d3c4a5968778695a4b3c2d1e0f"
OPEN_ROBOT_TOKEN = "open-robot-token-a81c3f"
APPKEY = "dingappkey7f3a9c"
APPSECRET = "app-secret-Zx81kQ0pLm3vT6wR"
AGENT_ID = 2_787_231_178
USERS = ("manager4220", "user123", "0447654442691174")


@dataclass
class Fake:
    state: FakeDingTalk
    url: str


@contextlib.asynccontextmanager
async def running_fake(**state_settings: Any) -> AsyncIterator[Fake]:
    """A fake with a signed robot, an unsigned one, and an app whose users are ``USERS``."""
    state = FakeDingTalk(**state_settings)
    state.add_robot(ROBOT_TOKEN, secret=ROBOT_SECRET)
    state.add_robot(OPEN_ROBOT_TOKEN)
    state.add_app(APPKEY, APPSECRET, AGENT_ID, users=USERS)
    async with fake.serve(state) as url:
        yield Fake(state, url)


@pytest.fixture
async def dingtalk() -> AsyncIterator[Fake]:
    """A fresh fake DingTalk on a real socket (:func:`running_fake`), per test."""
    async with running_fake() as fake:
        yield fake


def robot_ref(url: str, name: str = "ops-robot", revision: int = 1, **config: Any) -> AccountRef:
    config.setdefault("access_token", ROBOT_TOKEN)
    config.setdefault("secret", ROBOT_SECRET)
    typed = msgspec.convert({"endpoint": url, **config}, RobotAccount)
    return AccountRef(name=name, revision=revision, config=typed)


def app_ref(url: str, name: str = "ops-app", revision: int = 1, **config: Any) -> AccountRef:
    config.setdefault("appkey", APPKEY)
    config.setdefault("appsecret", APPSECRET)
    config.setdefault("agent_id", AGENT_ID)
    typed = msgspec.convert({"endpoint": url, **config}, AppAccount)
    return AccountRef(name=name, revision=revision, config=typed)


def outgoing(recipient: str = "group", text: str | None = "disk full on db-1", **fields: Any):
    fields.setdefault("delivery_id", str(uuid.uuid4()))
    fields.setdefault("message_id", str(uuid.uuid4()))
    return Outgoing(recipient=recipient, text=text, **fields)
