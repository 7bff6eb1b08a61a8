"""The HTTP session a DingTalk channel shares between its sends, and scrubbing secrets."""

from __future__ import annotations

import logging
from typing import TypeVar

import aiohttp
import msgspec

from gateway.channel import Failed, Retry

log = logging.getLogger(__name__)

JSON_UTF8 = {"Content-Type": "application/json;charset=utf-8"}
CONNECTIONS = 100  # per channel, across accounts

OutcomeT = TypeVar("OutcomeT")


class Http:
    """One aiohttp session, opened on first use (inside the event loop), closed by ``close``."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=CONNECTIONS),
                headers={"User-Agent": "msggate-dingtalk"},
            )
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def redact(outcome: OutcomeT, *secrets: str | None) -> OutcomeT:
    """``outcome`` with every secret value in its reason replaced by ``***``.

    Transport errors may quote the request URL, and a robot's URL carries its access token.
    """
    if not isinstance(outcome, Retry | Failed):
        return outcome
    reason = outcome.reason
    for secret in secrets:
        if secret and len(secret) >= 4 and secret in reason:
            reason = reason.replace(secret, "***")
    return msgspec.structs.replace(outcome, reason=reason) if reason != outcome.reason else outcome
