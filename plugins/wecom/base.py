"""What the ``wecom`` and ``wecom_robot`` channels share: one HTTP session, the recipient check
and the send scaffolding (account → body → one request → classified, redacted outcome).

A channel names its recipient parser (:meth:`WecomBase._parse`, raising ValueError), composes
the body with the answer's classifier (:meth:`WecomBase._prepare`), posts it
(:meth:`WecomBase._post`) and names the secret to scrub from any reason (:meth:`WecomBase._secret`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from gateway.channel import (
    AccountInvalid,
    AccountRef,
    Channel,
    ContentKind,
    Failed,
    Outcome,
    Outgoing,
)
from gateway.httpcall import Answer
from gateway.redact import redact_outcome
from plugins.wecom.account import account_from
from plugins.wecom.client import Http, Result

Classify = Callable[[Answer], Outcome]


class WecomBase(Channel):
    """A WeCom channel sending one request per delivery; see the module."""

    content_kinds: ClassVar[frozenset[ContentKind]] = frozenset({ContentKind.TEXT})
    unit: ClassVar[str] = "message"
    log_label: ClassVar[str]  # how the debug line names the channel

    def __init__(self) -> None:
        self._http = Http()

    @staticmethod
    def _parse(recipient: str) -> object:
        """The recipient as the body names it; ValueError says why it cannot be one."""
        raise NotImplementedError

    def _prepare(self, config: Any, outgoing: Outgoing) -> tuple[dict[str, Any], Classify]:
        """The request body and how to classify its answer; ValueError if it cannot be sent."""
        raise NotImplementedError

    async def _post(self, config: Any, body: dict[str, Any]) -> Result:
        raise NotImplementedError

    @staticmethod
    def _secret(config: Any) -> str:
        raise NotImplementedError

    def check_recipient(self, recipient: str) -> str | None:
        try:
            self._parse(recipient)
        except ValueError as exc:
            return str(exc)
        return None

    async def send(self, account: AccountRef, outgoing: Outgoing) -> Outcome:
        """One request for the delivery's recipient, classified (spec §1.4)."""
        try:
            config = account_from(account.config, self.account_type)
        except AccountInvalid as exc:
            return Failed(reason=exc.reason, code="config")
        try:
            body, classify = self._prepare(config, outgoing)
        except ValueError as exc:
            return Failed(reason=str(exc), code="invalid")
        result = await self._post(config, body)
        outcome = classify(result) if isinstance(result, Answer) else result
        logging.getLogger(type(self).__module__).debug(
            "%s %s via %s: %s",
            self.log_label,
            outgoing.delivery_id,
            account.name,
            type(outcome).__name__,
        )
        return redact_outcome(outcome, [self._secret(config)])

    async def close(self) -> None:
        """Close the HTTP session; any cached tokens go with the channel."""
        await self._http.close()
