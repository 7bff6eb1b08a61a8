"""Turning a delivery into SendSms parameters, with the checks the provider would make later.

``template`` is the TemplateCode and ``variables`` the TemplateParam (values become strings:
the API takes only string values). When the account knows the template's text, the variables
are checked against it and the rendered text gives the billed units; otherwise the message's
``text`` (the caller's copy of what the template says) is counted, and failing that, 1. A
``text`` longer than :data:`MAX_TEXT_CHARS` is refused whole, as is a rendered text over 500
characters with its signature: the provider would refuse it.
"""

from __future__ import annotations

import logging

import msgspec

from gateway.channel import Outgoing
from plugins.aliyun.numbers import mobile_problem
from plugins.aliyun.params import json_param, render, template_params
from plugins.sms.account import SIGN_NAME_MAX, SmsAccount
from plugins.sms.segments import MAX_LENGTH, count_segments, signed_text

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = MAX_LENGTH - len(signed_text("x" * SIGN_NAME_MAX, ""))
"""486: a text this long fits the 500 characters whatever the (at most 12-character) signature."""


class SmsRequest(msgspec.Struct, frozen=True):
    """The SendSms parameters for one delivery and what it will cost."""

    params: dict[str, str]
    units: int
    text: str | None  # as counted: signature included, when known


NO_TEMPLATE = (
    "Alibaba Cloud SMS sends approved templates only: give the message a template"
    " (its TemplateCode, e.g. SMS_123456789) and its variables"
)
"""The refusal of a message without a template: SendSms sends approved templates only."""


def compose(account: SmsAccount, outgoing: Outgoing) -> SmsRequest:
    """The request for ``outgoing``; raises ValueError with a reason when it cannot be sent."""
    problem = mobile_problem(outgoing.recipient)
    if problem:
        raise ValueError(problem)
    if outgoing.text is not None and len(outgoing.text) > MAX_TEXT_CHARS:
        raise ValueError(
            f"the text is {len(outgoing.text)} characters; Alibaba Cloud SMS takes {MAX_LENGTH}"
            f" with the signature, so at most {MAX_TEXT_CHARS}"
        )
    code = (outgoing.template or "").strip()
    if not code:
        raise ValueError(NO_TEMPLATE)
    known = account.templates.get(code)
    variables = template_params(outgoing.variables, known, f"template {code}")
    text = render(known, variables) if known is not None else outgoing.text
    counted = signed_text(account.sign_name, text) if text is not None else None
    if counted is not None and len(counted) > MAX_LENGTH:
        raise ValueError(
            f"the message is {len(counted)} characters with its signature; Alibaba Cloud SMS"
            f" takes at most {MAX_LENGTH}"
        )
    params = {
        "PhoneNumbers": outgoing.recipient,
        "SignName": account.sign_name,
        "TemplateCode": code,
    }
    if variables:
        params["TemplateParam"] = json_param(variables)
    units = count_segments(counted) if counted is not None else 1
    return SmsRequest(params, units, counted)
