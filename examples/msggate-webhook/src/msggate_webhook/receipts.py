"""The receipt route: receivers report back whether a delivery reached its recipient.

``POST /callbacks/webhook/receipts`` with a JSON body ``{"receipts": [{"id": ..., "status":
"delivered" | "undelivered", "recipient": ..., "code": ..., "reason": ...}]}``, where ``id`` is
the ``id`` the receiver answered the delivery with. The request is signed like the deliveries
(:mod:`msggate_webhook.signing`) with the secret in ``MSGGATE_WEBHOOK_RECEIPT_SECRET``, read on
every request; without it the route refuses every receipt.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

import msgspec
from aiohttp import web
from gateway.callbacks import CallbackRoute
from gateway.model import Receipt
from gateway.receipts import Receipts

from msggate_webhook.signing import signature_problem

log = logging.getLogger(__name__)

RECEIPT_SECRET_ENV = "MSGGATE_WEBHOOK_RECEIPT_SECRET"
PATH = "/webhook/receipts"


class ReceiptIn(msgspec.Struct, frozen=True):
    id: str
    status: Literal["delivered", "undelivered"]
    recipient: str | None = None
    code: str | None = None
    reason: str | None = None


class ReceiptBatch(msgspec.Struct, frozen=True):
    receipts: list[ReceiptIn]


_decode = msgspec.json.Decoder(ReceiptBatch).decode


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def handle_receipts(request: web.Request, receipts: Receipts) -> web.Response:
    """Verify the signature, then mark the deliveries the receipts name."""
    secret = os.environ.get(RECEIPT_SECRET_ENV)
    if not secret:
        return _error(403, f"receipts are off: the gateway has no {RECEIPT_SECRET_ENV}")
    body = await request.read()
    problem = signature_problem(secret, request.headers, body)
    if problem is not None:
        log.warning("webhook receipt refused from %s: %s", request.remote, problem)
        return _error(401, problem)
    try:
        batch = _decode(body)
    except msgspec.ValidationError as exc:
        return _error(422, str(exc))
    except msgspec.DecodeError:
        return _error(400, "the body is not JSON")
    matched = await receipts.record(
        "webhook",
        [
            Receipt(
                provider_id=r.id,
                delivered=r.status == "delivered",
                recipient=r.recipient,
                code=r.code,
                reason=r.reason,
                detail={"status": r.status},
            )
            for r in batch.receipts
        ],
    )
    return web.json_response({"matched": matched})


def receipt_route() -> CallbackRoute:
    return CallbackRoute(method="POST", path=PATH, handler=handle_receipts)
