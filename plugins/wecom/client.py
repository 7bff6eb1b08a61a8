"""An asynchronous client of the WeCom server API (qyapi.weixin.qq.com, ``cgi-bin`` v1).

Implements the documented calls msggate needs, as of the 2024 developer docs: ``gettoken``
(path 91039), ``message/send`` (path 90236), ``agent/get`` (path 90227) and the group robot's
``webhook/send`` (path 91770). Tokens are cached per (endpoint, corpid, agentid, secret) with
one refresh at a time, and a token WeCom refuses (40014/42001/41001) is dropped, refetched and
the call made once more.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import msgspec

from gateway.channel import Failed, Retry
from gateway.httpcall import Answer, call_json
from gateway.redact import fingerprint, redact_outcome
from gateway.tokens import Token, TokenCache
from plugins.wecom.account import WecomAccount, WecomRobotAccount
from plugins.wecom.classify import Verdict, errcode_of, failure, not_wecom, verdict

log = logging.getLogger(__name__)

JSON = {"Content-Type": "application/json; charset=utf-8"}

Result = Answer | Retry | Failed


class TokenFailed(Exception):
    """gettoken did not give a token: the outcome for the send, and WeCom's errcode if any."""

    def __init__(self, outcome: Retry | Failed, errcode: int | None = None) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome
        self.errcode = errcode


class Http:
    """One aiohttp session, opened on first use (inside the running loop), reopened if closed."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"User-Agent": "msggate-wecom"})
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def token_key(account: WecomAccount) -> tuple[str, str, int, str]:
    """The token cache key: one token per application, never the secret itself."""
    return (account.endpoint, account.corpid, account.agentid, fingerprint(account.corpsecret))


class WecomClient:
    """Application calls: token management, ``message/send`` and ``agent/get``."""

    def __init__(self, http: Http, tokens: TokenCache | None = None) -> None:
        self.http = http
        self.tokens = tokens or TokenCache()

    async def fetch_token(self, account: WecomAccount) -> Token:
        """A new token from ``gettoken``; raise TokenFailed with the outcome it calls for."""
        result = await call_json(
            self.http.session(),
            "GET",
            f"{account.endpoint}/cgi-bin/gettoken",
            params={"corpid": account.corpid, "corpsecret": account.corpsecret},
            idempotent=True,
            timeout=account.timeout,
        )
        if not isinstance(result, Answer):
            raise TokenFailed(redact_outcome(result, [account.corpsecret]))
        parsed = errcode_of(result.body)
        if parsed is None:
            raise TokenFailed(not_wecom(result.status, result.body))
        errcode, errmsg = parsed
        token = result.body.get("access_token")
        expires_in = result.body.get("expires_in")
        if errcode != 0:
            outcome = failure(errcode, errmsg)
            if verdict(errcode) is Verdict.TOKEN_EXPIRED:  # not a gettoken answer; do not loop
                outcome = Failed(reason=outcome.reason, code=outcome.code)
            raise TokenFailed(redact_outcome(outcome, [account.corpsecret]), errcode)
        if not isinstance(token, str) or not token or not isinstance(expires_in, int | float):
            raise TokenFailed(not_wecom(result.status, {"errcode": 0, "access_token": "?"}))
        log.info("wecom: new access token for corp %s agent %s", account.corpid, account.agentid)
        return Token(token, float(expires_in))

    async def token(self, account: WecomAccount) -> str:
        """The cached token, fetched (once for all concurrent callers) when missing or stale."""
        return await self.tokens.get(token_key(account), lambda: self.fetch_token(account))

    async def request(
        self,
        account: WecomAccount,
        token: str,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Result:
        """One call with ``token``; transport failures already classified, secrets masked."""
        kwargs: dict[str, Any] = {"params": {**(params or {}), "access_token": token}}
        if body is not None:
            kwargs.update(data=msgspec.json.encode(body), headers=JSON)
        result = await call_json(
            self.http.session(),
            method,
            f"{account.endpoint}{path}",
            idempotent=idempotent,
            timeout=account.timeout,
            **kwargs,
        )
        if isinstance(result, Answer):
            return result
        return redact_outcome(result, [token, account.corpsecret])

    async def call(
        self,
        account: WecomAccount,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> Result:
        """An authenticated call; a refused token is refreshed once and the call made again."""
        key = token_key(account)
        for attempt in (1, 2):
            try:
                token = await self.token(account)
            except TokenFailed as exc:
                return exc.outcome
            result = await self.request(
                account, token, method, path, idempotent=idempotent, params=params, body=body
            )
            if attempt == 1 and isinstance(result, Answer):
                parsed = errcode_of(result.body)
                if parsed is not None and verdict(parsed[0]) is Verdict.TOKEN_EXPIRED:
                    log.info(
                        "wecom: corp %s agent %s token refused (errcode %d), refreshing once",
                        account.corpid,
                        account.agentid,
                        parsed[0],
                    )
                    self.tokens.invalidate(key, token)
                    continue
            return result
        raise AssertionError("unreachable")

    async def send_message(self, account: WecomAccount, body: dict[str, Any]) -> Result:
        """POST ``message/send`` (not idempotent: a timeout after sending is "unknown")."""
        return await self.call(
            account, "POST", "/cgi-bin/message/send", idempotent=False, body=body
        )

    async def get_agent(self, account: WecomAccount, token: str) -> Result:
        """GET ``agent/get`` for the account's own application, with ``token``."""
        return await self.request(
            account,
            token,
            "GET",
            "/cgi-bin/agent/get",
            idempotent=True,
            params={"agentid": str(account.agentid)},
        )


class RobotClient:
    """The group robot's ``webhook/send``: the key in the URL is the only credential."""

    def __init__(self, http: Http) -> None:
        self.http = http

    async def send(self, account: WecomRobotAccount, body: dict[str, Any]) -> Result:
        result = await call_json(
            self.http.session(),
            "POST",
            f"{account.endpoint}/cgi-bin/webhook/send",
            params={"key": account.key},
            data=msgspec.json.encode(body),
            headers=JSON,
            idempotent=False,
            timeout=account.timeout,
        )
        if isinstance(result, Answer):
            return result
        return redact_outcome(result, [account.key])
