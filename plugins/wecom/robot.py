"""The ``wecom_robot`` channel: messages to a WeCom group through its robot's webhook.

A delivery's recipient is the member the message @-mentions (userid, mobile or ``@all``), so a
message to three recipients posts three messages, each mentioning one of them: one delivery is
one request, with its own outcome. A robot takes 20 messages a minute (spec §1.3), declared as a
rate limit per key so the gateway paces sends instead of collecting 45009s.
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.channel import AccountInvalid, AccountRef, Outgoing, RateLimit
from gateway.httpcall import Answer
from gateway.redact import fingerprint, redact
from plugins.wecom.account import WecomRobotAccount, account_from
from plugins.wecom.base import Classify, WecomBase
from plugins.wecom.classify import Verdict, describe, errcode_of, robot_outcome, verdict
from plugins.wecom.client import Result, RobotClient
from plugins.wecom.compose import robot_body
from plugins.wecom.options import (
    DEFAULT_ROBOT_OPTIONS,
    ROBOT_TEXT_BYTES,
    WecomRobotOptions,
    options_of,
)
from plugins.wecom.recipients import robot_mention

ROBOT_PER_MINUTE = 20

# A body a working robot refuses without posting anything (44004: empty content) while an
# unknown key gets 93000: the robot API has no call that only checks the key. [UNCONFIRMED
# against the live service: the order of WeCom's checks is inferred from observed answers.]
PROBE = {"msgtype": "text", "text": {"content": ""}}


class WecomRobotChannel(WecomBase):
    """Group robot webhooks: ``text`` (mentions by userid, mobile or @all) and ``markdown``."""

    name: ClassVar[str] = "wecom_robot"
    log_label: ClassVar[str] = "wecom robot"
    account_type: ClassVar[type[WecomRobotAccount]] = WecomRobotAccount
    options_type: ClassVar[type[WecomRobotOptions]] = WecomRobotOptions
    # text content (a subject line counts against it); markdown takes 4096 bytes
    max_text_bytes: ClassVar[int | None] = ROBOT_TEXT_BYTES

    def __init__(self) -> None:
        super().__init__()
        self.client = RobotClient(self._http)

    _parse = staticmethod(robot_mention)

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        # named after a fingerprint: rate-limit keys reach Redis and delivery events
        key = f"wecom_robot:{fingerprint(account.config.key)}"
        return [RateLimit(key, ROBOT_PER_MINUTE, 60.0)]

    def _prepare(
        self, config: WecomRobotAccount, outgoing: Outgoing
    ) -> tuple[dict[str, Any], Classify]:
        """One ``webhook/send`` mentioning the delivery's recipient."""
        options = options_of(outgoing, WecomRobotOptions, DEFAULT_ROBOT_OPTIONS)
        return robot_body(robot_mention(outgoing.recipient), outgoing, options), robot_outcome

    async def _post(self, config: WecomRobotAccount, body: dict[str, Any]) -> Result:
        return await self.client.send(config, body)

    @staticmethod
    def _secret(config: WecomRobotAccount) -> str:
        return config.key

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
