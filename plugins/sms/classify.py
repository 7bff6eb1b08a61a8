"""SendSms answers into outcomes (docs/providers.md §5.3).

Per-number flow control (``isv.BUSINESS_LIMIT_CONTROL``) is handled by
:func:`plugins.aliyun.channel.business_outcome` (wait for the next natural minute or hour; the daily
window fails the delivery). The account's own daily cap (``isv.DAY_LIMIT_CONTROL``, set in the
console) waits for midnight in China; the monthly cap is for an operator to lift.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from gateway.channel import Failed, Retry
from plugins.aliyun.channel import business_outcome
from plugins.aliyun.client import Reply
from plugins.aliyun.errors import WINDOW_MARGIN, Kind, Rule, Rules

log = logging.getLogger(__name__)

CHINA = dt.timezone(dt.timedelta(hours=8))

_SIGN = Rule(Kind.CONFIG, "sign_name", "the signature is not approved for this account")
SMS_RULES: Rules = {
    "isv.SMS_TEMPLATE_ILLEGAL": Rule(
        Kind.CONFIG, None, "the template is not approved or belongs to another account"
    ),
    "isv.SMS_SIGNATURE_ILLEGAL": _SIGN,
    "isv.SMS_SIGN_ILLEGAL": _SIGN,
    "isv.SIGN_STATE_ILLEGAL": _SIGN,
    "isv.SIGN_NAME_ILLEGAL": _SIGN,
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL": Rule(
        Kind.CONFIG, "sign_name", "the signature is not approved for this template's scene"
    ),
    "isv.DOMESTIC_NUMBER_NOT_SUPPORTED": Rule(
        Kind.CONFIG, None, "an international template cannot send to mainland numbers"
    ),
    "isv.EXTEND_CODE_ERROR": Rule(Kind.CONFIG),
    "isv.MONTH_LIMIT_CONTROL": Rule(
        Kind.CONFIG, None, "the monthly cap set in the SMS console is reached"
    ),
    "isv.DAY_LIMIT_CONTROL": Rule(
        Kind.RATE_LIMITED, None, "the daily cap set in the SMS console is reached"
    ),
}


def seconds_to_midnight_in_china(now: float) -> float:
    local = dt.datetime.fromtimestamp(now, CHINA)
    midnight = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - local).total_seconds() + WINDOW_MARGIN


def classify_reply(reply: Reply, now: float | None = None) -> Retry | Failed:
    """The outcome of a SendSms reply whose Code is not OK."""
    now = time.time() if now is None else now
    outcome = business_outcome(reply, SMS_RULES, now)
    if reply.code == "isv.DAY_LIMIT_CONTROL" and isinstance(outcome, Retry):
        return Retry(
            reason=outcome.reason, code=outcome.code, after=seconds_to_midnight_in_china(now)
        )
    return outcome
