"""The fake WeCom's state: its directory, tokens, robots, what it received, faults to inject.

Tests reach it through the app key ``FAKE_WECOM`` (``plugins.wecom.fake``) or keep the object
they passed to ``make_app``. Times come from ``clock`` (monotonic seconds) so tests may move it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# The default fixtures `msggate fake-providers` serves (fake values, safe to print).
CORP_ID = "wwfa4e0c2d1b3a5e7f"
CORP_SECRET = "fake-wecom-app-secret-0123456789abcdef"
AGENT_ID = 1000002
USERS = ("zhangsan", "lisi", "wangwu")
PARTIES = ("1", "2")
TAGS = ("1",)
ROBOT_KEY = "c0ffee00-1234-4bc4-97a0-0ec2a1fa5aaa"

APIS = frozenset({"gettoken", "message", "agent", "webhook"})


@dataclass
class FakeApp:
    """A self-built application: its credentials and the members, departments and tags it sees."""

    corpid: str
    corpsecret: str
    agentid: int
    users: set[str]
    parties: set[str]
    tags: set[str]
    name: str = "msggate fake app"
    disabled: bool = False


@dataclass
class FakeRobot:
    key: str
    disabled: bool = False
    in_group: bool = True


@dataclass
class IssuedToken:
    value: str
    app: FakeApp
    expires_at: float
    revoked: bool = False  # invalidated early: answered 40014


@dataclass
class Fault:
    """One injected answer: after ``delay`` seconds, an HTTP ``status`` or an ``errcode``
    (or, with neither, the normal answer: a slow provider)."""

    api: str
    errcode: int | None = None
    errmsg: str = ""
    status: int | None = None
    delay: float = 0.0


@dataclass
class AppMessage:
    """A ``message/send`` the fake accepted."""

    agentid: int
    msgtype: str
    body: dict[str, Any]
    touser: list[str]
    toparty: list[str]
    totag: list[str]
    msgid: str
    delivered_to: list[str]  # valid userids (or "@all") the fake would have shown it to
    dropped: list[str] = field(default_factory=list)  # over the per-member limit: lost silently
    truncated: list[str] = field(default_factory=list)  # textcard fields WeCom cut short


@dataclass
class RobotMessage:
    """A ``webhook/send`` the fake posted to its group."""

    key: str
    msgtype: str
    content: str
    mentioned_list: list[str]
    mentioned_mobile_list: list[str]
    at: float


class FakeWecom:
    """Everything the fake knows and records; configure it before or during a test."""

    def __init__(
        self,
        *,
        token_lifetime: int = 7200,
        robot_limit: int = 20,
        robot_window: float = 60.0,
        member_limit: int = 30,
        member_window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        defaults: bool = True,
        legacy_invalid: bool = False,
    ) -> None:
        self.token_lifetime = token_lifetime
        self.robot_limit = robot_limit
        self.robot_window = robot_window
        self.member_limit = member_limit
        self.member_window = member_window
        self.clock = clock
        # WeCom before errcode 81013: all recipients invalid still answered errcode 0 + lists
        self.legacy_invalid = legacy_invalid
        self.apps: list[FakeApp] = []
        self.robots: dict[str, FakeRobot] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.faults: list[Fault] = []
        self.recipient_faults: dict[str, Fault] = {}
        self.gettoken_calls = 0
        self.requests: list[tuple[str, dict[str, str], Any]] = []  # (api, query, body)
        self.messages: list[AppMessage] = []
        self.robot_messages: list[RobotMessage] = []
        self._robot_sends: dict[str, deque[float]] = {}
        self._member_sends: dict[tuple[int, str], deque[float]] = {}
        if defaults:
            self.add_app(CORP_ID, CORP_SECRET, AGENT_ID, USERS, PARTIES, TAGS)
            self.add_robot(ROBOT_KEY)

    # -- fixtures ---------------------------------------------------------------------------

    def add_app(
        self,
        corpid: str,
        corpsecret: str,
        agentid: int,
        users: tuple[str, ...] | list[str] = (),
        parties: tuple[str, ...] | list[str] = (),
        tags: tuple[str, ...] | list[str] = (),
    ) -> FakeApp:
        app = FakeApp(
            corpid, corpsecret, agentid, {u.lower() for u in users}, set(parties), set(tags)
        )
        self.apps.append(app)
        return app

    def add_robot(self, key: str) -> FakeRobot:
        robot = self.robots[key] = FakeRobot(key)
        return robot

    def app(self, corpid: str = CORP_ID, agentid: int = AGENT_ID) -> FakeApp:
        return next(a for a in self.apps if a.corpid == corpid and a.agentid == agentid)

    # -- test hooks -------------------------------------------------------------------------

    def fail_next(
        self,
        api: str,
        *,
        errcode: int | None = None,
        errmsg: str = "",
        status: int | None = None,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``api`` (gettoken, message, agent, webhook) so."""
        if api not in APIS:
            raise ValueError(f"unknown api {api!r}: one of {sorted(APIS)}")
        self.faults.extend(Fault(api, errcode, errmsg, status, delay) for _ in range(times))

    def fail_recipient(
        self,
        recipient: str,
        *,
        errcode: int | None = None,
        errmsg: str = "",
        status: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer every send to (or robot message mentioning) ``recipient`` so, until cleared.

        Faults by recipient hold however many other calls come in between (the conformance kit
        sends its fault cases among ordinary sends). A delay alone makes a slow answer.
        """
        self.recipient_faults[recipient.lower()] = Fault(
            "recipient", errcode, errmsg, status, delay
        )

    def recipient_fault(self, recipients: list[str]) -> Fault | None:
        for recipient in recipients:
            fault = self.recipient_faults.get(recipient.lower())
            if fault is not None:
                return fault
        return None

    def take_fault(self, api: str) -> Fault | None:
        for i, fault in enumerate(self.faults):
            if fault.api == api:
                return self.faults.pop(i)
        return None

    def revoke_tokens(self) -> None:
        """Invalidate every issued token early: the next call with one gets 40014."""
        for token in self.tokens.values():
            token.revoked = True

    def expire_tokens(self) -> None:
        """Make every issued token expire now: the next call with one gets 42001."""
        now = self.clock()
        for token in self.tokens.values():
            token.expires_at = min(token.expires_at, now)

    # -- behaviour --------------------------------------------------------------------------

    def find_app(self, corpid: str, corpsecret: str) -> FakeApp | int:
        """The application these credentials open, or the errcode WeCom answers."""
        of_corp = [a for a in self.apps if a.corpid == corpid]
        if not of_corp:
            return 40013
        for app in of_corp:
            if secrets.compare_digest(app.corpsecret.encode(), corpsecret.encode()):
                return app
        return 40001

    def issue(self, app: FakeApp) -> IssuedToken:
        """The app's valid token, or a new one: repeated calls inside validity get the same."""
        now = self.clock()
        for token in self.tokens.values():
            if token.app is app and not token.revoked and token.expires_at > now:
                return token
        token = IssuedToken(secrets.token_urlsafe(96), app, now + self.token_lifetime)
        self.tokens[token.value] = token
        return token

    def check_token(self, value: str | None) -> IssuedToken | int:
        """The token's record, or the errcode: 41001 missing, 40014 invalid, 42001 expired."""
        if not value:
            return 41001
        token = self.tokens.get(value)
        if token is None or token.revoked:
            return 40014
        if token.expires_at <= self.clock():
            return 42001
        return token

    def robot_throttled(self, key: str) -> bool:
        """True if the key posted ``robot_limit`` messages in the last ``robot_window`` s."""
        window = self._robot_sends.setdefault(key, deque())
        now = self.clock()
        while window and window[0] <= now - self.robot_window:
            window.popleft()
        return len(window) >= self.robot_limit

    def robot_posted(self, key: str) -> None:
        self._robot_sends.setdefault(key, deque()).append(self.clock())

    def member_accepts(self, agentid: int, userid: str) -> bool:
        """Count one message to a member; False past the per-member limit (dropped silently)."""
        window = self._member_sends.setdefault((agentid, userid), deque())
        now = self.clock()
        while window and window[0] <= now - self.member_window:
            window.popleft()
        if len(window) >= self.member_limit:
            return False
        window.append(now)
        return True

    def description(self) -> str:
        return (
            f"WeCom (app: corpid={CORP_ID} corpsecret={CORP_SECRET} agentid={AGENT_ID}, "
            f"users {', '.join(USERS)}; robot key={ROBOT_KEY})"
        )
