"""The SmsReport receipt route: ``POST /callbacks/sms/aliyun/{account}/{token}``.

Alibaba Cloud pushes a JSON array of status reports (docs/providers.md §5.6, doc 101867)::

    [{"phone_number": "13800138000", "send_time": "2017-01-01 00:00:00",
      "report_time": "2017-01-01 00:00:05", "success": true, "err_code": "DELIVERED",
      "err_msg": "用户接收成功", "sms_size": "1", "biz_id": "...", "out_id": ""}]

Each report marks the delivery with that BizId *and* number delivered or undelivered, with the
carrier's code and message. The caller is verified by :mod:`plugins.aliyun.receipts`.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.callbacks import CallbackRoute
from gateway.model import Receipt
from plugins.aliyun.receipts import china_time, report_route
from plugins.sms.account import SmsAccount

log = logging.getLogger(__name__)

CHANNEL = "sms"
_DETAIL = ("send_time", "report_time", "sms_size", "out_id", "err_code")


def receipt_from(report: dict[str, Any]) -> Receipt | None:
    """The Receipt of one SmsReport item, or None if it lacks the BizId or the number."""
    biz_id, phone = report.get("biz_id"), report.get("phone_number")
    if not isinstance(biz_id, str) or not biz_id or not isinstance(phone, str) or not phone:
        return None
    delivered = report.get("success") is True
    code = str(report.get("err_code") or ("DELIVERED" if delivered else "UNKNOWN"))
    message = str(report.get("err_msg") or "")
    return Receipt(
        provider_id=biz_id,
        delivered=delivered,
        recipient=phone,
        code=code,
        reason=None if delivered else (message or code),
        at=china_time(report.get("report_time")),
        detail={k: report[k] for k in _DETAIL if k in report},
    )


def receipts_from(reports: list[dict[str, Any]]) -> list[Receipt]:
    """The receipts of a pushed SmsReport batch (reports without biz_id/number are left out)."""
    parsed = [receipt_from(r) for r in reports]
    usable = [r for r in parsed if r is not None]
    if len(usable) < len(parsed):
        log.warning(
            "SmsReport: %d reports without biz_id/phone_number ignored", len(parsed) - len(usable)
        )
    return usable


def routes() -> list[CallbackRoute]:
    return [report_route(CHANNEL, SmsAccount, receipts_from, "status reports")]
