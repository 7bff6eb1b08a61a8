"""Classifying Alibaba Cloud error codes into outcomes (docs/providers.md §4.4, §5.3, §6.3).

Every answer carries ``Code`` (``OK`` or an error) and ``Message``. Two families:

- gateway-level codes (:data:`GATEWAY_RULES`): the RPC gateway refused the request before the
  product saw it — signature, AccessKey, timestamp, nonce, throttling, missing parameters;
- business codes (``isv.*`` caller side, ``isp.*`` provider side): the product's answer.
  :data:`COMMUNICATION_RULES` holds the ones SMS (dysmsapi 2017-05-25) and voice (dyvmsapi
  2017-05-25, error list help.aliyun.com/zh/vms/the-error-code-list) share.

A product looks a code up in its own rules, then in :data:`COMMUNICATION_RULES`, then falls
back to the prefix rule of §6.3: an unknown ``isv.*`` is permanent, an unknown ``isp.*``
temporary. :func:`classify` builds the outcome with the provider's code and message.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping

import msgspec

from gateway.channel import Failed, Retry

log = logging.getLogger(__name__)

THROTTLE_AFTER = 1.0  # §4.4: at least a second; the dispatcher's backoff grows it
WINDOW_MARGIN = 1.0  # seconds past a flow-control window's end, for clock differences
_ECHO = " server string to sign is:"


class Kind(enum.StrEnum):
    """The outcome classes of docs/providers.md §0."""

    RETRY = "RETRY"
    RATE_LIMITED = "RATE_LIMITED"
    CONFIG = "CONFIG"
    PERMANENT = "PERMANENT"


class Rule(msgspec.Struct, frozen=True):
    """How to treat one code: its class, the account field to fix, a hint for the operator."""

    kind: Kind
    field: str | None = None
    hint: str = ""
    after: float = 0.0


Rules = Mapping[str, Rule]

GATEWAY_RULES: Rules = {
    "SignatureDoesNotMatch": Rule(
        Kind.CONFIG, "access_key_secret", "the AccessKey secret is wrong"
    ),
    "IncompleteSignature": Rule(Kind.CONFIG, "access_key_secret", "the AccessKey secret is wrong"),
    "InvalidAccessKeyId.NotFound": Rule(Kind.CONFIG, "access_key_id", "unknown AccessKey ID"),
    "InvalidAccessKeyId.Inactive": Rule(Kind.CONFIG, "access_key_id", "the AccessKey is disabled"),
    "InvalidAccessKeyId": Rule(Kind.CONFIG, "access_key_id", "unknown AccessKey ID"),
    # the client re-signs once with a fresh timestamp; a second refusal is this machine's clock
    "InvalidTimeStamp.Expired": Rule(
        Kind.CONFIG, None, "this machine's clock is more than 15 minutes off"
    ),
    "InvalidTimeStamp.Format": Rule(Kind.PERMANENT),
    "SignatureNonceUsed": Rule(Kind.RETRY),
    "InvalidParameter": Rule(Kind.PERMANENT),
    "Throttling": Rule(Kind.RATE_LIMITED, after=THROTTLE_AFTER),
    "Throttling.User": Rule(Kind.RATE_LIMITED, after=THROTTLE_AFTER),
    "Throttling.Api": Rule(Kind.RATE_LIMITED, after=THROTTLE_AFTER),
    "Forbidden.RAM": Rule(Kind.CONFIG, "access_key_id", "the RAM policy lacks this permission"),
    "InvalidAction.NotFound": Rule(Kind.CONFIG, "endpoint", "the endpoint has no such API"),
    "InvalidVersion": Rule(Kind.CONFIG, "endpoint", "the endpoint has no such API version"),
    "InternalError": Rule(Kind.RETRY),
    "ServiceUnavailable": Rule(Kind.RETRY),
}
"""§4.4. Also gateway-level: every ``Missing<Param>`` and ``InvalidParameter.*`` (permanent)."""

COMMUNICATION_RULES: Rules = {
    "isv.MOBILE_NUMBER_ILLEGAL": Rule(Kind.PERMANENT),
    "isv.MOBILE_COUNT_OVER_LIMIT": Rule(Kind.PERMANENT),
    "isv.TEMPLATE_MISSING_PARAMETERS": Rule(Kind.PERMANENT),
    "isv.INVALID_PARAMETERS": Rule(Kind.PERMANENT),
    "isv.INVALID_JSON_PARAM": Rule(Kind.PERMANENT),
    "isv.PARAM_LENGTH_LIMIT": Rule(Kind.PERMANENT),
    "isv.PARAM_NOT_SUPPORT_URL": Rule(Kind.PERMANENT),
    "isv.SMS_CONTENT_ILLEGAL": Rule(Kind.PERMANENT),
    "isv.BLACK_KEY_CONTROL_LIMIT": Rule(Kind.PERMANENT),
    "isv.AMOUNT_NOT_ENOUGH": Rule(Kind.CONFIG, None, "the Alibaba Cloud balance is used up"),
    "isv.OUT_OF_SERVICE": Rule(Kind.CONFIG, None, "the service is stopped for this account"),
    "isv.ACCOUNT_NOT_EXISTS": Rule(Kind.CONFIG, "access_key_id"),
    "isv.ACCOUNT_ABNORMAL": Rule(Kind.CONFIG, "access_key_id"),
    "isv.PRODUCT_UN_SUBSCRIPT": Rule(Kind.CONFIG, "access_key_id", "the product is not enabled"),
    "isv.PRODUCT_UNSUBSCRIBE": Rule(Kind.CONFIG, "access_key_id", "the product is not enabled"),
    "isp.RAM_PERMISSION_DENY": Rule(Kind.CONFIG, "access_key_id", "the RAM policy lacks it"),
    "isv.DENY_IP_RANGE": Rule(Kind.CONFIG, None, "this server's IP is not allowed"),
    "isp.SYSTEM_ERROR": Rule(Kind.RETRY),
    "isv.BUSINESS_LIMIT_CONTROL": Rule(Kind.RATE_LIMITED),  # see flow_control()
}
"""The ``isv.*``/``isp.*`` codes dysmsapi and dyvmsapi share (§5.3, VMS error list)."""


def is_gateway_code(code: str) -> bool:
    """True for a code the RPC gateway answers itself (§4.4), before the product runs."""
    return (
        code in GATEWAY_RULES
        or code.startswith(("Missing", "InvalidParameter.", "Throttling."))
        or code.startswith("InvalidTimeStamp")
    )


def rule_for(code: str, *tables: Rules) -> Rule:
    """The first rule for ``code`` in ``tables``, then the gateway and shared tables, then the
    prefix fallback (unknown ``isp.*`` temporary, anything else unknown permanent)."""
    for table in (*tables, GATEWAY_RULES, COMMUNICATION_RULES):
        rule = table.get(code)
        if rule is not None:
            return rule
    if code.startswith("Throttling"):
        return Rule(Kind.RATE_LIMITED, after=THROTTLE_AFTER)
    if code.startswith("isp."):
        return Rule(Kind.RETRY)
    return Rule(Kind.PERMANENT)


def field_for(code: str | None, *tables: Rules) -> str | None:
    """The account field an operator should look at for ``code``, if the rules name one."""
    return rule_for(code, *tables).field if code else None


def safe_message(message: object) -> str:
    """The provider's message, without the string to sign a signature error echoes.

    ``SignatureDoesNotMatch`` quotes the whole request (AccessKey ID, phone numbers, template
    parameters such as verification codes): that must not reach a reason or a log.
    """
    text = str(message or "").strip()
    cut = text.find(_ECHO)
    if cut >= 0:
        text = text[:cut].rstrip() + " (request echo removed)"
    return text[:500]


def classify(
    code: str, message: object, *tables: Rules, request_id: str | None = None
) -> Retry | Failed:
    """The outcome for a non-OK ``code``: Retry for RETRY/RATE_LIMITED, else Failed.

    The reason is the provider's message (echo removed), the operator's hint for CONFIG codes,
    and the request id support asks for.
    """
    rule = rule_for(code, *tables)
    parts = [f"{code}: {safe_message(message) or 'no message'}"]
    if rule.hint:
        parts.append(f"({rule.hint})")
    if request_id:
        parts.append(f"[RequestId {request_id}]")
    reason = " ".join(parts)
    if rule.kind in (Kind.RETRY, Kind.RATE_LIMITED):
        return Retry(reason=reason, code=code, after=rule.after)
    return Failed(reason=reason, code=code)


def seconds_to_next(period: float, now: float) -> float:
    """Seconds from ``now`` to the next multiple of ``period``, plus a small margin.

    Natural minutes and hours in China (UTC+8) start when they do in UTC.
    """
    return period - now % period + WINDOW_MARGIN


def flow_control(
    code: str, message: str, now: float, *tables: Rules, request_id: str | None = None
) -> Retry | Failed:
    """``isv.BUSINESS_LIMIT_CONTROL``: per-number flow control names its window in ``message``.

    Minute and hour windows are natural ones, so retry when the next begins; the day window is
    a rolling 24 hours (§5.4), so the delivery fails for today.
    """
    outcome = classify(code, message, *tables, request_id=request_id)
    lowered = message.lower()
    if "天" in lowered or "day" in lowered:
        return Failed(reason=outcome.reason + " (per-number daily limit)", code=code)
    period = 3600.0 if ("小时" in lowered or "hour" in lowered) else 60.0
    return Retry(reason=outcome.reason, code=code, after=seconds_to_next(period, now))
