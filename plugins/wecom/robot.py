"""The ``wecom_robot`` channel: messages to a WeCom group through its robot's webhook.

A delivery's recipient is the member the message @-mentions (userid, mobile or ``@all``), so a
message to three recipients posts three messages, each mentioning one of them: one delivery is
one request, with its own outcome. A robot takes 20 messages a minute (spec §1.3), declared as a
rate limit per key so the gateway paces sends instead of collecting 45009s.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from gateway.channel import (
    AccountInvalid,
    AccountRef,
    Channel,
    ContentKind,
    Failed,
    Outcome,
    Outgoing,
    RateLimit,
)
from gateway.httpcall import Answer
from gateway.redact import fingerprint, redact, redact_outcome
from plugins.wecom.account import WecomRobotAccount, account_from
from plugins.wecom.classify import Verdict, describe, errcode_of, robot_outcome, verdict
from plugins.wecom.client import Http, RobotClient
from plugins.wecom.compose import robot_body
from plugins.wecom.options import (
    DEFAULT_ROBOT_OPTIONS,
    ROBOT_TEXT_BYTES,
    WecomRobotOptions,
    options_of,
)
from plugins.wecom.recipients import robot_mention

log = logging.getLogger(__name__)

ROBOT_PER_MINUTE = 20

# A body a working robot refuses without posting anything (44004: empty content) while an
# unknown key gets 93000: the robot API has no call that only checks the key. [UNCONFIRMED
# against the live service: the order of WeCom's checks is inferred from observed answers.]
PROBE = {"msgtype": "text", "text": {"content": ""}}


class WecomRobotChannel(Channel):
    """Group robot webhooks: ``text`` (mentions by userid, mobile or @all) and ``markdown``."""

    name: ClassVar[str] = "wecom_robot"
    content_kinds: ClassVar[frozenset[ContentKind]] = frozenset({ContentKind.TEXT})
    account_type: ClassVar[type[WecomRobotAccount]] = WecomRobotAccount
    unit: ClassVar[str] = "message"
    options_type: ClassVar[type[WecomRobotOptions]] = WecomRobotOptions
    # text content (a subject line counts against it); markdown takes 4096 bytes
    max_text_bytes: ClassVar[int | None] = ROBOT_TEXT_BYTES

    def __init__(self) -> None:
        self._http = Http()
        self.client = RobotClient(self._http)

    def check_recipient(self, recipient: str) -> str | None:
        try:
            robot_mention(recipient)
        except ValueError as exc:
            return str(exc)
        return None

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        # named after a fingerprint: rate-limit keys reach Redis and delivery events
        key = f"wecom_robot:{fingerprint(account.config.key)}"
        return [RateLimit(key, ROBOT_PER_MINUTE, 60.0)]

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        """One ``webhook/send`` mentioning the delivery's recipient, classified (spec §1.4)."""
        try:
            config = account_from(account.config, WecomRobotAccount)
        except AccountInvalid as exc:
            return Failed(reason=exc.reason, code="config")
        try:
            options = options_of(outgoing, WecomRobotOptions, DEFAULT_ROBOT_OPTIONS)
            body = robot_body(robot_mention(outgoing.recipient), outgoing, options)
        except ValueError as exc:
            return Failed(reason=str(exc), code="invalid")
        result = await self.client.send(config, body)
        outcome = robot_outcome(result) if isinstance(result, Answer) else result
        log.debug(
            "wecom robot %s via %s: %s", outgoing.delivery_id, account.name, type(outcome).__name__
        )
        return redact_outcome(outcome, [config.key])

    async def validate_account(self, account: AccountRef) -> None:
        """Post a body WeCom refuses without posting (see PROBE): 93000 means a bad key."""
        config = account_from(account.config, WecomRobotAccount)
        result = await self.client.send(config, PROBE)
        if not isinstance(result, Answer):
            reason = redact(result.reason, [config.key])
            raise AccountInvalid(f"cannot reach WeCom at {config.endpoint}: {reason}", "endpoint")
        parsed = errcode_of(result.body)
        if parsed is None:
            raise AccountInvalid(f"unexpected answer from the webhook: {result.body!r}"[:300])
        errcode, errmsg = parsed
        kind = verdict(errcode)
        if kind is Verdict.CONFIG:
            raise AccountInvalid(redact(describe(errcode, errmsg), [config.key]), field="key")
        if kind is Verdict.RETRY:
            raise AccountInvalid(f"WeCom is busy, try again: {describe(errcode, errmsg)}")
        # 0, a content error or 45009: the key was recognised

    async def close(self) -> None:
        await self._http.close()
