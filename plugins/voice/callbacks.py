"""The call-result receipt route: ``POST /callbacks/voice/aliyun/{account}/{token}``.

Alibaba Cloud pushes VoiceReport (the call record, after the call) and VoiceCallReport (call
progress) as JSON arrays (docs/providers.md §6.4, help.aliyun.com/zh/vms/voicereport-6)::

    [{"call_id": "116012354148^10281378****", "status_code": "200000", "status_msg": "执行完成",
      "callee": "13900000000", "duration": "10", "end_time": "2023-03-15 14:46:25", ...}]

Only final statuses settle a delivery (named by CallId and callee): ``200000`` (listened to the
end) and ``200001`` (hung up early) mean the callee was reached — delivered; every other final
code (busy, no answer, invalid number, powered off ...) is undelivered with the code and the
provider's message. Progress codes (calling, ringing, answered, ended, DTMF) are acknowledged
and ignored. The caller is verified by :mod:`plugins.aliyun.receipts`.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.callbacks import CallbackRoute
from gateway.model import Receipt
from plugins.aliyun.receipts import CALL_STATUS_TEXT, china_time, report_route
from plugins.voice.account import VoiceAccount

log = logging.getLogger(__name__)

CHANNEL = "voice"
REACHED = frozenset({"200000", "200001"})
PROGRESS = frozenset({"200100", "200101", "200102", "200201", "300000"})
_DETAIL = (
    "status_code",
    "smart_status_code",
    "duration",
    "start_time",
    "end_time",
    "hangup_direction",
    "out_id",
    "caller",
)


def receipt_from(report: dict[str, Any]) -> Receipt | None:
    """The Receipt of one final report, or None (progress, or no call id/status)."""
    call_id, code = report.get("call_id"), str(report.get("status_code") or "")
    if not isinstance(call_id, str) or not call_id or not code or code in PROGRESS:
        return None
    delivered = code in REACHED
    message = str(report.get("status_msg") or CALL_STATUS_TEXT.get(code, "call not completed"))
    smart = report.get("smart_status_code")
    callee = report.get("callee")
    return Receipt(
        provider_id=call_id,
        delivered=delivered,
        recipient=callee if isinstance(callee, str) and callee else None,
        code=code,
        reason=None if delivered else (f"{message} ({smart})" if smart else message),
        at=china_time(report.get("end_time") or report.get("status_time")),
        detail={k: report[k] for k in _DETAIL if k in report},
    )


def receipts_from(reports: list[dict[str, Any]]) -> list[Receipt]:
    """The final results in a pushed VoiceReport / VoiceCallReport batch."""
    return [r for r in (receipt_from(item) for item in reports) if r is not None]


def routes() -> list[CallbackRoute]:
    return [report_route(CHANNEL, VoiceAccount, receipts_from, "call reports")]
