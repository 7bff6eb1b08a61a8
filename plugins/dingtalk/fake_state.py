"""The fake DingTalk's state: robots, apps, tokens, what it received, and injected faults.

Tests reach it through ``app[FAKE]`` (or keep the object they passed to ``make_app``); demos
and benchmarks change it over the fake's ``/_fake/...`` control routes.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

ROUTES = frozenset({"robot", "gettoken", "oauth2", "asyncsend", "getsendresult"})
RECORDS_KEPT = 10_000  # received requests kept for inspection (counters count them all)


@dataclass
class FakeRobot:
    """A custom robot and its security setting (signing, keywords, IP allow-list)."""

    access_token: str
    secret: str | None = None
    keywords: tuple[str, ...] = ()
    allow_ips: tuple[str, ...] = ()  # addresses or CIDR blocks
    per_minute: int = 20
    block_seconds: float = 600.0
    posted_at: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)  # msgUuid -> answer


@dataclass
class FakeApp:
    """An enterprise internal app; ``users`` (if given) are the userids that exist."""

    appkey: str
    appsecret: str
    agent_id: int
    token_ttl: float = 7200.0
    users: frozenset[str] | None = None
    token: str | None = None


@dataclass
class RobotPost:
    access_token: str
    body: dict[str, Any]
    signed: bool
    at: float


@dataclass
class Notice:
    """One accepted asyncsend_v2 call and what became of each userid."""

    task_id: int
    appkey: str
    agent_id: int
    userids: list[str]
    msg: dict[str, Any]
    at: float
    status: dict[str, str] = field(default_factory=dict)  # userid -> list name
    forbidden: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Fault:
    """What the next request to a route gets instead of (or before) the normal answer."""

    status: int | None = None  # answer this HTTP status
    body: dict[str, Any] | None = None  # answer this JSON (HTTP 200 unless status is set)
    delay: float = 0.0  # wait this long first


class FakeDingTalk:
    """Everything the fake knows. ``clock`` (seconds) and ``skew`` let tests move its time."""

    def __init__(self, clock: Callable[[], float] = time.time, legacy_limits: bool = False):
        self.clock = clock
        self.skew = 0.0
        self.legacy_limits = legacy_limits  # 100 userids per call, as older docs said
        self.robots: dict[str, FakeRobot] = {}
        self.apps: dict[str, FakeApp] = {}
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (appkey, expires at)
        self.robot_posts: deque[RobotPost] = deque(maxlen=RECORDS_KEPT)
        self.notices: dict[int, Notice] = {}
        self.counts: Counter[str] = Counter()  # requests per route, and "robot_ok" etc.
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._recipient_faults: dict[str, Fault] = {}
        self._next_task = 70_000
        self._sent_today: set[tuple[str, str, str, int]] = set()
        self._per_user_today: Counter[tuple[str, str, int]] = Counter()

    def now(self) -> float:
        return self.clock() + self.skew

    # -- set-up -----------------------------------------------------------------------------

    def add_robot(self, access_token: str, **settings: Any) -> FakeRobot:
        robot = FakeRobot(access_token, **settings)
        self.robots[access_token] = robot
        return robot

    def add_app(self, appkey: str, appsecret: str, agent_id: int, **settings: Any) -> FakeApp:
        if isinstance(settings.get("users"), list | tuple | set):
            settings["users"] = frozenset(settings["users"])
        app = FakeApp(appkey, appsecret, agent_id, **settings)
        self.apps[appkey] = app
        return app

    def fail_next(
        self,
        route: str,
        *,
        status: int | None = None,
        body: dict[str, Any] | None = None,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` requests to ``route`` get ``status``/``body`` after ``delay``."""
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}: one of {sorted(ROUTES)}")
        self._faults[route].extend(Fault(status, body, delay) for _ in range(times))

    def fail_for(
        self,
        recipient: str,
        *,
        status: int | None = None,
        body: dict[str, Any] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer every request naming ``recipient`` (a robot's @-mentioned mobile or userid,
        a work notice's userid) with ``status``/``body`` after ``delay``, until cleared."""
        self._recipient_faults[recipient] = Fault(status, body, delay)

    def clear_faults(self) -> None:
        self._faults.clear()
        self._recipient_faults.clear()

    def take_fault(self, route: str, recipients: Sequence[str] = ()) -> Fault | None:
        queue = self._faults.get(route)
        if queue:
            return queue.popleft()
        for recipient in recipients:
            if recipient in self._recipient_faults:
                return self._recipient_faults[recipient]
        return None

    def expire_tokens(self) -> None:
        """Every issued access token stops working (as if it had expired)."""
        self.tokens.clear()
        for app in self.apps.values():
            app.token = None

    # -- tokens -----------------------------------------------------------------------------

    def issue_token(self, app: FakeApp) -> tuple[str, int]:
        """The app's token: the same one while valid (its validity extended), else a new one."""
        self.counts["token_issued"] += 1
        now = self.now()
        if app.token is not None and app.token in self.tokens and self.tokens[app.token][1] > now:
            self.tokens[app.token] = (app.appkey, now + app.token_ttl)
            return app.token, int(app.token_ttl)
        app.token = secrets.token_hex(16)
        self.tokens[app.token] = (app.appkey, now + app.token_ttl)
        return app.token, int(app.token_ttl)

    def app_of_token(self, token: str) -> FakeApp | None:
        found = self.tokens.get(token)
        if found is None or found[1] <= self.now():
            return None
        return self.apps.get(found[0])

    # -- work notices -----------------------------------------------------------------------

    def queue_notice(
        self, app: FakeApp, userids: list[str], msg: dict[str, Any], raw: bytes
    ) -> Notice:
        """Accept a notice; decide each userid's fate now, as DingTalk's silent rules would."""
        self._next_task += 1
        notice = Notice(self._next_task, app.appkey, app.agent_id, userids, msg, self.now())
        day = int((self.now() + 8 * 3600) // 86_400)  # DingTalk's day is China's
        digest = hashlib.sha256(raw).hexdigest()
        for userid in userids:
            if app.users is not None and userid not in app.users:
                notice.status[userid] = "invalid_user_id_list"
            elif (app.appkey, userid, digest, day) in self._sent_today:
                notice.status[userid] = "forbidden_user_id_list"  # same content, same day
                notice.forbidden.append({"userid": userid, "code": "143106", "count": 1})
            elif self._per_user_today[(app.appkey, userid, day)] >= 500:
                notice.status[userid] = "forbidden_user_id_list"  # over 500 a day
                notice.forbidden.append({"userid": userid, "code": "143105", "count": 1})
            else:
                notice.status[userid] = "unread_user_id_list"
                self._sent_today.add((app.appkey, userid, digest, day))
                self._per_user_today[(app.appkey, userid, day)] += 1
        self.notices[notice.task_id] = notice
        return notice

    def mark_read(self, task_id: int, userid: str) -> None:
        notice = self.notices[task_id]
        if notice.status.get(userid) == "unread_user_id_list":
            notice.status[userid] = "read_user_id_list"

    def send_result(self, notice: Notice) -> dict[str, Any]:
        lists: dict[str, Any] = {
            name: []
            for name in (
                "read_user_id_list",
                "unread_user_id_list",
                "invalid_user_id_list",
                "forbidden_user_id_list",
                "failed_user_id_list",
                "read_dept_id_list",
                "unread_dept_id_list",
                "invalid_dept_id_list",
            )
        }
        for userid, list_name in notice.status.items():
            lists[list_name].append(userid)
        lists["forbidden_list"] = list(notice.forbidden)
        return lists

    def summary(self) -> dict[str, Any]:
        """Counters for the control route (no secrets)."""
        return {
            "counts": dict(self.counts),
            "robots": len(self.robots),
            "apps": len(self.apps),
            "robot_posts_kept": len(self.robot_posts),
            "notices": len(self.notices),
        }
