"""A small asynchronous client of the Alibaba Cloud RPC API (docs/providers.md §4).

One :class:`AliyunClient` per channel holds one aiohttp session for every account and product::

    client = AliyunClient()
    answer = await client.call(
        "https://dysmsapi.aliyuncs.com", "SendSms", "2017-05-25",
        {"PhoneNumbers": "13800138000", "SignName": "...", "TemplateCode": "SMS_1"},
        access_key_id, access_key_secret,
    )
    if isinstance(answer, Reply) and answer.ok: ...   # answer.body["BizId"]
    elif isinstance(answer, Reply): ...               # a business code: classify it
    else: ...                                         # Retry / Failed, already classified
    await client.close()

Requests are POSTed as a form (the method is part of the signature; a form has no URL length
limit). Transport failures, HTTP 5xx and 429 are classified by :func:`gateway.httpcall.call_json`
(a timeout on a non-idempotent call is ``Failed`` code ``unknown``). Gateway-level refusals
(§4.4) come back classified as well; after ``InvalidTimeStamp.Expired`` or
``SignatureNonceUsed`` the request is re-signed with a fresh timestamp and nonce and sent once
more at once — the gateway refused it before the product acted, so this cannot duplicate a
message. Secrets and request parameters (phone numbers, codes) are never logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import msgspec

from gateway.channel import Failed, Retry
from gateway.httpcall import Answer, call_json
from plugins.aliyun.errors import Rules, classify, is_gateway_code, safe_message
from plugins.aliyun.signature import new_nonce, signed_params

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
DEFAULT_REGION = "cn-hangzhou"
RESIGN_CODES = frozenset({"InvalidTimeStamp.Expired", "SignatureNonceUsed"})


class Reply(msgspec.Struct, frozen=True):
    """The product answered (the RPC gateway let the request through).

    ``code`` is ``"OK"`` or the product's business code; ``body`` the whole JSON answer.
    """

    status: int
    code: str
    message: str
    request_id: str | None
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.code == "OK"

    def outcome(self, *tables: Rules) -> Retry | Failed:
        """The Retry/Failed a non-OK reply means under ``tables`` (see :func:`classify`)."""
        return classify(self.code, self.message, *tables, request_id=self.request_id)


def endpoint_url(endpoint: str) -> str:
    """The URL to POST to: the endpoint (scheme and host, maybe a path) with a trailing /."""
    if "://" not in endpoint:
        endpoint = "https://" + endpoint
    return endpoint.rstrip("/") + "/"


def _to_reply(answer: Answer) -> Reply | Retry | Failed:
    body = answer.body if isinstance(answer.body, dict) else {}
    code = body.get("Code")
    request_id = body.get("RequestId")
    if not isinstance(code, str) or not code:
        if 200 <= answer.status < 300 and isinstance(answer.body, dict):
            code = "OK"  # some RPC products answer success without a Code
        else:
            return Failed(
                reason=f"HTTP {answer.status} without an Alibaba Cloud error code",
                code=str(answer.status),
            )
    message = safe_message(body.get("Message"))
    if code != "OK" and is_gateway_code(code):
        return classify(code, message, request_id=request_id)
    return Reply(answer.status, code, message, request_id, body)


class AliyunClient:
    """Signs and sends RPC calls over one shared aiohttp session.

    ``clock`` and ``nonce`` exist for tests (a skewed clock, a replayed nonce).
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = new_nonce,
    ) -> None:
        self.timeout = timeout
        self._clock = clock
        self._nonce = nonce
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def call(
        self,
        endpoint: str,
        action: str,
        version: str,
        params: Mapping[str, str],
        access_key_id: str,
        access_key_secret: str,
        *,
        region_id: str | None = DEFAULT_REGION,
        idempotent: bool = False,
        timeout: float | None = None,
    ) -> Reply | Retry | Failed:
        """Call ``action`` of ``version`` at ``endpoint`` with the product ``params``.

        ``idempotent=True`` for queries (a timeout is then worth a retry); sends keep the
        default, so a timeout comes back as ``Failed`` code ``unknown``.
        """
        url = endpoint_url(endpoint)
        outcome: Reply | Retry | Failed | None = None
        for attempt in (1, 2):
            form = signed_params(
                "POST",
                action,
                version,
                params,
                access_key_id,
                access_key_secret,
                at=self._clock(),
                nonce=self._nonce(),
                region_id=region_id,
            )
            answer = await call_json(
                self._http(),
                "POST",
                url,
                idempotent=idempotent,
                timeout=timeout or self.timeout,
                data=form,
            )
            outcome = answer if not isinstance(answer, Answer) else _to_reply(answer)
            if attempt == 1 and outcome.code in RESIGN_CODES:
                log.info("%s refused %s (%s): signing it again", url, action, outcome.code)
                continue
            break
        assert outcome is not None
        if not isinstance(outcome, Reply):
            log.info("%s %s: %s %s", url, action, type(outcome).__name__, outcome.code)
        return outcome

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
