"""``dingtalk``: work notifications (工作通知) from an enterprise internal app to userids.

API: legacy ``asyncsend_v2`` with the app's access token from ``/gettoken`` (see
``plugins.dingtalk.oapi``). The token is cached per app until 300 s before it expires, one
refresh is shared by concurrent senders, and a token-expired answer invalidates it, fetches a
new one and sends once more. DingTalk queues the notice and answers a ``task_id`` (the
provider id); ``getsendresult`` later tells read / unread / invalid / forbidden userids.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import msgspec

from gateway.channel import (
    AccountInvalid,
    AccountRef,
    Failed,
    Outcome,
    Outgoing,
    RateLimit,
    Retry,
    Sent,
)
from gateway.httpcall import Answer
from gateway.model import Receipt
from gateway.tokens import Token, TokenCache
from plugins.dingtalk import oapi
from plugins.dingtalk.account import AppAccount
from plugins.dingtalk.base import DingTalkBase
from plugins.dingtalk.classify import TokenExpired, oapi_outcome
from plugins.dingtalk.compose import NOTICE_TEXT_MAX, notice_msg, repeat_suffix
from plugins.dingtalk.mentions import check_userid
from plugins.dingtalk.options import NoticeOptions
from plugins.dingtalk.repeats import RecentContents, content_key

log = logging.getLogger(__name__)

# DingTalk's documented limits for an internal app (docs/providers.md §2.3–2.4)
CALLS_PER_SECOND = 40  # per appkey per API (90018 beyond)
CALLS_PER_MINUTE = 1500  # per appkey per API (90006 beyond)
NOTICES_PER_USER_DAY = 500  # beyond it DingTalk answers ok and drops the notice


class TokenUnavailable(Exception):
    """No token could be fetched; ``outcome`` says why (raised through the token cache)."""

    def __init__(self, outcome: Retry | Failed) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


class DingTalkChannel(DingTalkBase):
    """Work notifications from an internal app: text, markdown, action_card."""

    name: ClassVar[str] = "dingtalk"
    account_type: ClassVar[type[AppAccount]] = AppAccount
    options_type: ClassVar[type[NoticeOptions]] = NoticeOptions
    max_text_bytes: ClassVar[int | None] = NOTICE_TEXT_MAX

    def __init__(self) -> None:
        super().__init__()
        self.tokens = TokenCache()
        self.recent = RecentContents()

    def check_recipient(self, recipient: str) -> str | None:
        return check_userid(recipient)

    def rate_limits(self, account: AccountRef, outgoing: Outgoing) -> list[RateLimit]:
        """Calls per second and per minute of the app, and notices per user per day."""
        config: AppAccount = account.config
        app = f"dingtalk:{config.appkey}"
        return [
            RateLimit(f"{app}:asyncsend:1s", CALLS_PER_SECOND, 1.0),
            RateLimit(f"{app}:asyncsend:60s", CALLS_PER_MINUTE, 60.0),
            RateLimit(f"{app}:user:{outgoing.recipient}", NOTICES_PER_USER_DAY, 86_400.0),
        ]

    # -- tokens ---------------------------------------------------------------------------

    async def _fetch(self, config: AppAccount) -> Token:
        result = await oapi.fetch_token(self._http, config)
        if isinstance(result, Token):
            log.info("dingtalk app %s: new access token (%.0fs)", config.appkey, result.expires_in)
            return result
        raise TokenUnavailable(result)

    async def _token(self, config: AppAccount) -> str | Retry | Failed:
        try:
            return await self.tokens.get(config.token_key, lambda: self._fetch(config))
        except TokenUnavailable as exc:
            return exc.outcome

    # -- send -----------------------------------------------------------------------------

    async def _deliver(self, config: AppAccount, body: bytes) -> tuple[Outcome, bool]:
        """Send with a cached token, refreshing it once if refused; (outcome, refused).

        ``refused`` is True when the notice surely did not reach DingTalk's queue.
        """
        token = await self._token(config)
        if not isinstance(token, str):
            return token, True
        answer = await oapi.asyncsend(self._http, config, token, body)
        if not isinstance(answer, Answer):
            return answer, answer.code == "connect"
        outcome = oapi_outcome(answer)
        if isinstance(outcome, TokenExpired):
            log.info("dingtalk app %s: token refused (%s); refreshing", config.appkey, outcome.code)
            self.tokens.invalidate(config.token_key, token)
            token = await self._token(config)
            if not isinstance(token, str):
                return token, True
            answer = await oapi.asyncsend(self._http, config, token, body)
            if not isinstance(answer, Answer):
                return answer, answer.code == "connect"
            outcome = oapi_outcome(answer)
            if isinstance(outcome, TokenExpired):
                self.tokens.invalidate(config.token_key, token)
                return Retry(
                    reason=f"DingTalk refused a freshly fetched access token: {outcome.reason}",
                    code=outcome.code,
                ), True
        return outcome, not isinstance(outcome, Sent)

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        config: AppAccount = account.config
        options: NoticeOptions = self._options(outgoing)
        problem = check_userid(outgoing.recipient)
        if problem:
            return Failed(reason=problem, code="recipient")
        msg = notice_msg(outgoing, options)
        if isinstance(msg, Failed):
            return msg
        key = content_key(config.appkey, config.agent_id, outgoing.recipient, msg)
        claimed = options.repeat_suffix == "auto" and self.recent.claim(key)
        if options.repeat_suffix == "always" or (options.repeat_suffix == "auto" and not claimed):
            msg = notice_msg(outgoing, options, repeat_suffix(outgoing.delivery_id))
            if isinstance(msg, Failed):
                return Failed(
                    reason=msg.reason + " with the suffix that keeps a repeat from being dropped",
                    code=msg.code,
                )
        body = msgspec.json.encode(
            {"agent_id": config.agent_id, "userid_list": outgoing.recipient, "msg": msg}
        )
        outcome, refused = await self._deliver(config, body)
        if claimed and refused:
            self.recent.release(key)
        log.debug("dingtalk %s delivery %s: %r", config.appkey, outgoing.delivery_id, outcome)
        return outcome

    async def send_result(self, account: AccountRef, task_id: int | str) -> list[Receipt] | Outcome:
        """Receipts for a task from ``getsendresult`` (for a poller), or why there are none."""
        config: AppAccount = account.config
        token = await self._token(config)
        if not isinstance(token, str):
            return token
        answer = await oapi.getsendresult(self._http, config, token, int(task_id))
        if not isinstance(answer, Answer):
            return answer
        outcome: Any = oapi_outcome(answer)
        if not isinstance(outcome, Sent):
            if isinstance(outcome, TokenExpired):
                self.tokens.invalidate(config.token_key, token)
                return Retry(reason=outcome.reason, code=outcome.code)
            return outcome
        return oapi.receipts_from(task_id, oapi.send_result_of(answer.body))

    async def validate_account(self, account: AccountRef) -> None:
        """Fetch a fresh token: it proves appkey and appsecret (agent_id has no cheap check)."""
        config: AppAccount = account.config
        result = await oapi.fetch_token(self._http, config)
        if isinstance(result, Token):
            return
        if isinstance(result, Retry):
            field = "endpoint" if result.code == "connect" else None
            raise AccountInvalid(f"cannot reach DingTalk: {result.reason}", field=field)
        raise AccountInvalid(result.reason, field="appsecret" if result.code == "40096" else None)
