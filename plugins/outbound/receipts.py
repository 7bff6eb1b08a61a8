"""The outbound receipt route: Alibaba Cloud pushes call results here.

Configure ``https://<msggate>/callbacks/outbound/aliyun/<account name>/<receipt_token>`` as the
HTTP batch-push URL of the call-record message (VoiceReport of the SmartCall category for
dyvms, RobotCallReportAiccs for aiccs). The pushes are not signed; the caller is checked by
:func:`plugins.aliyun.receipts.verified_account` (the account's secret ``receipt_token``, its
optional ``receipt_ips``), and a receipt only changes a delivery of this channel whose provider
id it names. Without receipts configured, results stay "sent"; the alternative would be to poll
``QueryCallDetailByTaskId`` (dyvms) or ``ListRobotCallDialog`` (aiccs) per call, not done here.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.callbacks import CallbackRoute
from gateway.receipts import Receipts
from plugins.aliyun.receipts import accepted, json_array, refused, verified_account
from plugins.outbound.results import receipts_from

log = logging.getLogger(__name__)

CHANNEL = "outbound"
PATH = "/outbound/aliyun/{account}/{token}"


async def receive(request: web.Request, receipts: Receipts) -> web.StreamResponse:
    """Take one pushed batch of call results."""
    _, refusal = await verified_account(request, CHANNEL)
    if refusal is not None:
        return refusal
    items = await json_array(request)
    if items is None:
        return refused(400, "expected a JSON array of call reports")
    found = receipts_from(items)
    try:
        matched = await receipts.record(CHANNEL, found)
    except Exception:
        log.exception("outbound receipts could not be stored; Alibaba Cloud will push again")
        return refused(500, "not stored, push again")
    log.info(
        "outbound receipts: %d reports, %d results, %d matched", len(items), len(found), matched
    )
    return accepted()


def routes() -> list[CallbackRoute]:
    return [CallbackRoute("POST", PATH, receive)]
