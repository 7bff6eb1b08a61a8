"""The WeLink HTTP client: access tokens (``/api/auth/v2/tickets``) and card notifications.

Tokens come from ``POST /api/auth/v2/tickets`` (start-09) with a *dynamic* ``expires_in``; they
are cached with :class:`gateway.tokens.TokenCache` (until 300 s before expiry, one refresh at a
time per app). A send answered "token invalid/expired" drops the token, fetches a new one and
tries once more. So does ``501`` (API not granted): WeLink's doc says a token fetched before a
grant must be re-fetched, so one fresh token is tried before the account is blamed.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
from msgspec.structs import replace

from gateway.channel import Failed, Outcome, Retry, Sent
from gateway.httpcall import Answer, call_json
from gateway.redact import fingerprint
from gateway.tokens import Token, TokenCache
from plugins.welink.account import WeLinkAccount
from plugins.welink.card import CARD_PATH
from plugins.welink.classify import NOT_GRANTED, Kind, code_of, failure, kind_of, message_of

log = logging.getLogger(__name__)

TOKEN_PATH = "/api/auth/v2/tickets"
AUTH_HEADER = "x-wlk-Authorization"


class TokenUnavailable(Exception):
    """No token: ``outcome`` says why (Retry for WeLink trouble, Failed for bad credentials)."""

    def __init__(self, outcome: Retry | Failed) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


def token_key(account: WeLinkAccount) -> tuple[str, str, str]:
    """Tokens are per app; the secret's fingerprint keeps an edited secret off an old token."""
    return (account.base_url, account.client_id, fingerprint(account.client_secret))


class WeLinkClient:
    """One HTTP session and one token cache, shared by every WeLink account."""

    def __init__(self, tokens: TokenCache | None = None) -> None:
        self.tokens = tokens or TokenCache()
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def fetch_token(self, account: WeLinkAccount) -> Token:
        """A new token from WeLink; raise TokenUnavailable with the outcome when there is none."""
        answer = await call_json(
            self._http(),
            "POST",
            account.base_url + TOKEN_PATH,
            idempotent=True,
            timeout=account.timeout,
            json={"client_id": account.client_id, "client_secret": account.client_secret},
        )
        if not isinstance(answer, Answer):
            raise TokenUnavailable(replace(answer, reason=f"WeLink token: {answer.reason}"))
        code = code_of(answer.body)
        token = answer.body.get("access_token") if isinstance(answer.body, dict) else None
        if code == "0" and isinstance(token, str) and token:
            try:
                expires_in = float(answer.body.get("expires_in"))
            except (TypeError, ValueError):
                expires_in = 0.0
            if expires_in <= 0:
                raise TokenUnavailable(
                    Retry(reason=f"WeLink token answer without expires_in (HTTP {answer.status})")
                )
            log.debug("welink token for %s: expires in %ss", account.client_id, expires_in)
            return Token(token, expires_in)
        if code is None or code == "0":
            raise TokenUnavailable(
                Retry(reason=f"WeLink token answer not understood (HTTP {answer.status})")
            )
        outcome = failure(code, message_of(answer.body), answer.status)
        raise TokenUnavailable(replace(outcome, reason=f"WeLink token refused: {outcome.reason}"))

    async def token(self, account: WeLinkAccount) -> str:
        """A valid cached token (fetching one only when needed); raise TokenUnavailable."""
        return await self.tokens.get(token_key(account), lambda: self.fetch_token(account))

    async def post(self, account: WeLinkAccount, path: str, body: dict[str, Any]) -> Outcome:
        """POST ``body`` with the app's token; refresh it once if WeLink refuses it."""
        key = token_key(account)
        for attempt in (1, 2):
            try:
                token = await self.token(account)
            except TokenUnavailable as exc:
                return exc.outcome
            answer = await call_json(
                self._http(),
                "POST",
                account.base_url + path,
                idempotent=False,  # a card may have been shown: a timeout is "unknown"
                timeout=account.timeout,
                json=body,
                headers={AUTH_HEADER: token},
            )
            if not isinstance(answer, Answer):
                return answer
            code = code_of(answer.body)
            if code is None:
                return Retry(
                    reason=f"WeLink answer without a code (HTTP {answer.status})",
                    code=str(answer.status),
                )
            kind = kind_of(code)
            if kind is Kind.OK:
                item = answer.body.get("itemId")
                return Sent(
                    provider_id=str(item) if item else None,
                    units=1,
                    answer=f"{code} {message_of(answer.body)}".strip(),
                )
            if attempt == 1 and (kind is Kind.TOKEN_EXPIRED or code == NOT_GRANTED):
                log.info("welink %s: token refused (%s), refetching", account.client_id, code)
                self.tokens.invalidate(key, token)
                continue
            outcome = failure(code, message_of(answer.body), answer.status)
            if kind is Kind.TOKEN_EXPIRED:  # refused again right after a fresh fetch
                return Retry(reason=f"{outcome.reason} (also with a new token)", code=code)
            return outcome
        raise AssertionError("unreachable")

    async def send_card(self, account: WeLinkAccount, body: dict[str, Any]) -> Outcome:
        return await self.post(account, CARD_PATH, body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
