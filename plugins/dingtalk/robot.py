"""``dingtalk_robot``: posts to a group through a custom robot's signed webhook.

API: the custom robot webhook ``POST /robot/send?access_token=...[&timestamp=&sign=]`` as
documented on open.dingtalk.com "custom-robot-access" (docs/providers.md §2.1; the legacy
webhook, not the v1.0 ``/v1.0/robot/groupMessages/send`` of app robots). Each recipient is one
post @-mentioning that member (see ``plugins.dingtalk.mentions``). The body carries the
delivery id as ``msgUuid``, DingTalk's idempotency key, so a retry after a timeout cannot post
twice and the send counts as idempotent.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import yarl

from gateway.channel import (
    AccountInvalid,
    AccountRef,
    Failed,
    Outcome,
    Outgoing,
    RateLimit,
    Retry,
)
from gateway.httpcall import Answer, call_json
from plugins.dingtalk.account import RobotAccount
from plugins.dingtalk.base import DingTalkBase
from plugins.dingtalk.classify import (
    ROBOT_BAD_TOKEN,
    ROBOT_SECURITY,
    errcode,
    robot_outcome,
    timestamp_refused,
)
from plugins.dingtalk.compose import ROBOT_TEXT_MAX, robot_body
from plugins.dingtalk.http import JSON_UTF8, redact
from plugins.dingtalk.mentions import Mention, parse_recipient
from plugins.dingtalk.options import RobotOptions
from plugins.dingtalk.sign import robot_query

log = logging.getLogger(__name__)

ROBOT_WINDOW_SECONDS = 60.0
UNSIGNED = "the robot is set to signing (加签): give the account the robot's secret (SEC...)"


class DingTalkRobotChannel(DingTalkBase):
    """Group messages through a DingTalk custom robot (text, markdown, actionCard)."""

    name: ClassVar[str] = "dingtalk_robot"
    account_type: ClassVar[type[RobotAccount]] = RobotAccount
    options_type: ClassVar[type[RobotOptions]] = RobotOptions
    max_text_bytes: ClassVar[int | None] = ROBOT_TEXT_MAX

    def check_recipient(self, recipient: str) -> str | None:
        parsed = parse_recipient(recipient)
        return parsed if isinstance(parsed, str) else None

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        """The robot's posts per minute (20 for a real robot), keyed without its token."""
        config: RobotAccount = account.config
        key = f"dingtalk_robot:{config.robot_id}"
        return [RateLimit(key=key, limit=config.per_minute, per_seconds=ROBOT_WINDOW_SECONDS)]

    async def _post(self, config: RobotAccount, body: bytes) -> Answer | Retry | Failed:
        """One signed POST (a fresh timestamp each time); secrets scrubbed from any reason."""
        url = yarl.URL(
            f"{config.endpoint}/robot/send?{robot_query(config.access_token, config.secret)}",
            encoded=True,
        )
        answer = await call_json(
            self._http.session(),
            "POST",
            url,
            idempotent=True,  # msgUuid makes a resend harmless
            timeout=config.timeout,
            data=body,
            headers=JSON_UTF8,
        )
        return redact(answer, config.access_token, config.secret)

    async def _exchange(self, config: RobotAccount, body: bytes) -> Answer | Retry | Failed:
        """Post, and post once more with a fresh timestamp if DingTalk refused the first one."""
        answer = await self._post(config, body)
        if isinstance(answer, Answer) and timestamp_refused(answer) and config.secret:
            log.warning("robot %s refused the timestamp; retrying once", config.robot_id)
            answer = await self._post(config, body)
        return answer

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        config: RobotAccount = account.config
        options: RobotOptions = self._options(outgoing)
        mention = parse_recipient(outgoing.recipient)
        if not isinstance(mention, Mention):
            return Failed(reason=mention, code="recipient")
        body = robot_body(outgoing, options, mention)
        if isinstance(body, Failed):
            return body
        answer = await self._exchange(config, body)
        if not isinstance(answer, Answer):
            return answer
        if timestamp_refused(answer) and not config.secret:
            return Failed(reason=UNSIGNED, code=str(ROBOT_SECURITY))
        outcome = robot_outcome(answer, provider_id=outgoing.delivery_id)
        log.debug("robot %s delivery %s: %r", config.robot_id, outgoing.delivery_id, outcome)
        return outcome

    async def validate_account(self, account: AccountRef) -> None:
        """Prove the token and secret with a signed post that has no message type.

        DingTalk checks the token, then the security setting, and only then the message, which
        it refuses (``300001 msgtype is null``): nothing reaches the group. That the security
        check comes before the message check is what the fake does; the real order is not
        documented.
        """
        config: RobotAccount = account.config
        answer = await self._exchange(config, b"{}")
        if isinstance(answer, Retry | Failed):
            field = "endpoint" if answer.code == "connect" else None
            raise AccountInvalid(f"cannot check the robot: {answer.reason}", field=field)
        code = errcode(answer)
        if code is None:
            raise AccountInvalid(
                f"{config.endpoint} did not answer like DingTalk (HTTP {answer.status})",
                field="endpoint",
            )
        outcome = robot_outcome(answer, provider_id=None)
        if not isinstance(outcome, Failed):
            return
        if code == ROBOT_SECURITY:
            if timestamp_refused(answer) and not config.secret:
                raise AccountInvalid(UNSIGNED, field="secret")
            if "keyword" in outcome.reason:
                return  # a keyword robot: the token works; each text must carry a keyword
            field = "secret" if "signature" in outcome.reason else None
            raise AccountInvalid(outcome.reason, field=field)
        if code in ROBOT_BAD_TOKEN and "access_token" in outcome.reason:
            raise AccountInvalid(outcome.reason, field="access_token")
        # any other refusal: the robot took the credentials and refused the empty message
