"""Call results from Alibaba Cloud receipt pushes, as gateway receipts (docs/providers.md §6.4).

Two push formats reach the outbound receipt route (both HTTP batch pushes of a JSON array):

- Voice Service ``VoiceReport`` of the SmartCall (智能语音交互) category, for BatchRobotSmartCall
  tasks: ``status_code``, ``smart_status_code``, ``callee``, ``duration``, ``end_time`` and an
  ``out_id`` of the form ``ALICOM_SMART_SAAS^<task id>^<...>`` — the task id is our provider id
  (one callee per task, so it names the delivery);
- Intelligent Contact Center ``RobotCallReportAiccs`` (help.aliyun.com/document_detail/383430),
  for RobotCall: ``callId`` (our provider id), ``data.info.code``, ``calledNo``, ``duration``,
  ``endTime`` (ms) — and its ``VoiceReportAiccs`` with ``call_id`` and ``status_code``.

A call counts as delivered when it was answered: ``smart_status_code`` ``ANSWERED``, or status
``200000`` (listened to the end) / ``200001`` (hung up early), or ``200100`` (ended) with a
duration. Progress states are not final and are skipped; every other status is undelivered
with its meaning as the reason.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from gateway.model import Receipt
from plugins.aliyun.receipts import CALL_STATUS_TEXT, china_time

log = logging.getLogger(__name__)

SAAS_PREFIX = "ALICOM_SMART_SAAS^"

ANSWERED = frozenset({"200000", "200001"})
IN_PROGRESS = frozenset(
    {"200101", "200201", "200102", "300000"}
)  # calling, ringing, answered, DTMF


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _duration(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _epoch_ms(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(float(value) / 1000, dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _receipt(
    provider_id: str, status: str, smart: str, duration: float, at: dt.datetime | None, raw: dict
) -> Receipt | None:
    if status in IN_PROGRESS and not smart:
        return None
    reached = smart == "ANSWERED" or (
        not smart and (status in ANSWERED or (status == "200100" and duration > 0))
    )
    meaning = CALL_STATUS_TEXT.get(status, "call result")
    reason = f"{meaning} ({smart})" if smart and smart != "ANSWERED" else meaning
    return Receipt(
        provider_id=provider_id,
        delivered=reached,
        code=status or smart or None,
        reason=None if reached else reason,
        at=at,
        detail={"report": raw},
    )


def from_voice_report(item: dict[str, Any]) -> Receipt | None:
    """A dyvms VoiceReport of a BatchRobotSmartCall task (None if it is not one, or not final)."""
    out = _text(item.get("out_id"))
    if not out.startswith(SAAS_PREFIX):
        return None
    task = out[len(SAAS_PREFIX) :].split("^", 1)[0]
    if not task:
        return None
    return _receipt(
        task,
        _text(item.get("status_code")),
        _text(item.get("smart_status_code")),
        _duration(item.get("duration")),
        china_time(item.get("end_time")),
        item,
    )


def from_aiccs_report(item: dict[str, Any]) -> Receipt | None:
    """A RobotCallReportAiccs (``callId``) or VoiceReportAiccs (``call_id``) item."""
    if "callId" in item:
        data = item.get("data") if isinstance(item.get("data"), dict) else {}
        info = data.get("info") if isinstance(data.get("info"), dict) else {}
        call = _text(item.get("callId"))
        if not call or (item.get("type") not in (None, "finish")):
            return None
        return _receipt(
            call,
            _text(info.get("code")),
            "",
            _duration(info.get("duration")),
            _epoch_ms(info.get("endTime")),
            item,
        )
    call = _text(item.get("call_id"))
    if not call:
        return None
    return _receipt(
        call,
        _text(item.get("status_code")),
        _text(item.get("smart_status_code")),
        _duration(item.get("duration")),
        china_time(item.get("end_time")),
        item,
    )


def receipts_from(items: list[dict[str, Any]]) -> list[Receipt]:
    """The final call results in a pushed batch, whichever of the formats each item has."""
    found = []
    for item in items:
        if _text(item.get("out_id")).startswith(SAAS_PREFIX):
            receipt = from_voice_report(item)
        else:
            receipt = from_aiccs_report(item)
        if receipt is not None:
            found.append(receipt)
    return found
