"""One signed POST to the receiver, with transport failures classified.

``gateway.httpcall.call_json`` suits providers that answer JSON with their own error codes; a
generic receiver may answer anything (an empty 204, "OK", an HTML error page) and its status
is all that counts, so this module reads the raw answer and leaves the JSON to
:mod:`msggate_webhook.classify`. Every timeout is a Retry, even after the request was sent:
each attempt carries the same ``delivery_id`` (body and ``X-Msggate-Delivery``), which receivers
use to drop the duplicate.
"""

from __future__ import annotations

import logging

import aiohttp
from gateway.channel import Failed, Outcome, Retry

import msggate_webhook
from msggate_webhook.account import WebhookAccount
from msggate_webhook.classify import classify
from msggate_webhook.signing import DELIVERY_HEADER, signed_headers

log = logging.getLogger(__name__)

USER_AGENT = f"msggate-webhook/{msggate_webhook.__version__}"
MAX_ANSWER = 64 * 1024  # bytes of the answer worth reading: the id and an error message


def request_headers(account: WebhookAccount, body: bytes, delivery_id: str | None) -> dict:
    """The account's headers, then ours: content type, agent, delivery id, signature."""
    headers = dict(account.headers)
    headers["Content-Type"] = "application/json"
    headers["User-Agent"] = USER_AGENT
    if delivery_id is not None:
        headers[DELIVERY_HEADER] = delivery_id
    if account.secret:
        headers.update(signed_headers(account.secret, body))
    return headers


async def _read_some(response: aiohttp.ClientResponse) -> bytes:
    raw = bytearray()
    async for chunk in response.content.iter_chunked(8192):
        raw += chunk
        if len(raw) >= MAX_ANSWER:
            break
    return bytes(raw)


async def post(
    session: aiohttp.ClientSession,
    account: WebhookAccount,
    body: bytes,
    delivery_id: str | None = None,
) -> Outcome:
    """POST ``body`` to the account's URL; the outcome of the answer or of the failure."""
    headers = request_headers(account, body, delivery_id)
    try:
        async with session.post(
            account.url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=account.timeout),
            allow_redirects=False,
        ) as response:
            raw = await _read_some(response)
            return classify(response.status, response.headers, raw, account.secret_values())
    except aiohttp.InvalidURL:
        return Failed(reason="the account's url is not a valid URL", code="url")
    except (aiohttp.ClientConnectorError, aiohttp.ClientSSLError) as exc:
        return Retry(reason=f"cannot connect to the receiver: {exc}", code="connect")
    except TimeoutError:
        return Retry(
            reason=f"the receiver did not answer within {account.timeout:g}s (the next attempt"
            " has the same delivery id, so the receiver can drop a duplicate)",
            code="timeout",
        )
    except aiohttp.ClientError as exc:
        return Retry(reason=f"connection to the receiver failed: {exc!r}", code="connection")
