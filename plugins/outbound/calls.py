"""The request parameters of one robot call, for either API (docs/providers.md §7.2, §7.3).

- dyvms ``BatchRobotSmartCall`` (Version 2017-05-25): a task with this one callee;
  the script is ``DialogId``; variables go as ``TtsParamHead`` (names) and ``TtsParam``
  (``[{"number": callee, "params": [values in the same order]}]``).
- aiccs ``RobotCall`` (Version 2019-10-15): one call; the script is ``RobotId``; variables go
  as ``Params``, a JSON object of at most 512 bytes; ``OutId`` (1-15 bytes) carries a tag of the
  delivery, echoed in receipts.

The script id comes from the message's ``template``; its parameters from ``variables``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from gateway.channel import Outgoing
from plugins.outbound.account import OutboundAccount
from plugins.outbound.options import OutboundOptions

log = logging.getLogger(__name__)

DYVMS_VERSION = "2017-05-25"
AICCS_VERSION = "2019-10-15"
BATCH_ROBOT_SMART_CALL = "BatchRobotSmartCall"
ROBOT_CALL = "RobotCall"
PARAMS_MAX_BYTES = 512  # aiccs RobotCall Params
SCRIPT_ID = re.compile(r"\d{1,19}")  # DialogId / RobotId are longs


class CallInvalid(ValueError):
    """The message cannot be placed as a robot call: a permanent failure with a code."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def script_id(outgoing: Outgoing) -> str:
    """The script (话术) id: the message's ``template``, a number."""
    return script_id_of(outgoing.template)


def script_id_of(template: str | None) -> str:
    """The script id in ``template``; CallInvalid when there is none or it is no number."""
    template = (template or "").strip()
    if not template:
        raise CallInvalid(
            "an outbound call needs its script: give the script id (话术 ID) as the message's"
            " template",
            "template",
        )
    if not SCRIPT_ID.fullmatch(template):
        raise CallInvalid(
            f"the script id (template) must be a number, not {template!r}", "template"
        )
    return template


def variables(outgoing: Outgoing) -> dict[str, str]:
    """The script's parameters as strings; numbers are written out, anything else refused."""
    return parameters(outgoing.variables)


def parameters(variables: dict[str, Any]) -> dict[str, str]:
    """``variables`` as the script's parameters (strings); CallInvalid for anything but
    strings and numbers."""
    values: dict[str, str] = {}
    for name, value in variables.items():
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise CallInvalid(
                f"variable {name!r} must be a string or a number for a robot call", "variables"
            )
        values[str(name)] = value if isinstance(value, str) else str(value)
    return values


def task_name(outgoing: Outgoing, options: OutboundOptions) -> str:
    return options.task_name or f"msggate-{outgoing.delivery_id.replace('-', '')[-22:]}"


def out_id(outgoing: Outgoing) -> str:
    """A 15-byte tag of the delivery (aiccs ``OutId``), for reconciling without a receipt."""
    return outgoing.delivery_id.replace("-", "")[-15:]


def dyvms_params(
    account: OutboundAccount, outgoing: Outgoing, options: OutboundOptions
) -> dict[str, str]:
    params = {
        "CalledShowNumber": account.caller_number,
        "CorpName": account.company_name,
        "CalledNumber": outgoing.recipient,
        "DialogId": script_id(outgoing),
        "TaskName": task_name(outgoing, options),
    }
    values = variables(outgoing)
    if values:
        params["TtsParamHead"] = _json(list(values))
        params["TtsParam"] = _json(
            [{"number": outgoing.recipient, "params": list(values.values())}]
        )
    if options.early_media_asr:
        params["EarlyMediaAsr"] = "true"
    return params


def aiccs_params(
    account: OutboundAccount, outgoing: Outgoing, options: OutboundOptions
) -> dict[str, str]:
    params = {
        "CalledShowNumber": account.caller_number,
        "CalledNumber": outgoing.recipient,
        "RobotId": script_id(outgoing),
        "OutId": out_id(outgoing),
    }
    values = variables(outgoing)
    if values:
        encoded = _json(values)
        size = len(encoded.encode())
        if size > PARAMS_MAX_BYTES:
            raise CallInvalid(
                f"the script parameters are {size} bytes as JSON; RobotCall takes"
                f" {PARAMS_MAX_BYTES}: shorten them",
                "size",
            )
        params["Params"] = encoded
    if options.record:
        params["RecordFlag"] = "true"
    if options.early_media_asr:
        params["EarlyMediaAsr"] = "true"
    return params


def call_request(
    account: OutboundAccount, outgoing: Outgoing, options: OutboundOptions
) -> tuple[str, str, dict[str, str]]:
    """``(action, version, params)`` of the call; raise CallInvalid for a bad message."""
    if account.api == "aiccs":
        return ROBOT_CALL, AICCS_VERSION, aiccs_params(account, outgoing, options)
    return BATCH_ROBOT_SMART_CALL, DYVMS_VERSION, dyvms_params(account, outgoing, options)


def validation_request(account: OutboundAccount) -> tuple[str, str]:
    """A harmless signed read that proves the AccessKey and the product: list the scripts."""
    if account.api == "aiccs":
        return "ListAiccsRobot", AICCS_VERSION
    return "QueryRobotv2AllList", DYVMS_VERSION


def call_id(account: OutboundAccount, body: dict[str, Any]) -> str | None:
    """The provider id of a placed call: dyvms ``TaskId``, aiccs ``Data`` (the call id)."""
    value = body.get("Data") if account.api == "aiccs" else body.get("TaskId")
    return str(value) if value not in (None, "") else None
