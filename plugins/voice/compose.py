"""Turning a delivery into SingleCallByTts parameters (dyvmsapi 2017-05-25, doc 393519).

``template`` is the TtsCode, ``variables`` the TtsParam (a JSON object of strings, under 250
characters in all, no links); the recipient is the single CalledNumber. The message's ``text``
is not sent — a TTS call speaks its approved template — so it has no length limit here.
"""

from __future__ import annotations

import logging

import msgspec

from gateway.channel import Outgoing
from plugins.aliyun.numbers import phone_problem
from plugins.aliyun.params import json_param, template_params
from plugins.voice.account import VoiceAccount

log = logging.getLogger(__name__)

TTS_PARAM_MAX = 249  # characters of the TtsParam JSON: "total < 250" (doc 393519)


class CallRequest(msgspec.Struct, frozen=True):
    params: dict[str, str]


NO_TEMPLATE = (
    "Alibaba Cloud voice calls speak approved TTS templates only: give the message a"
    " template (its TtsCode, e.g. TTS_123456789) and its variables"
)
"""The refusal of a message without a template: a notification call speaks one."""


def compose(account: VoiceAccount, outgoing: Outgoing) -> CallRequest:
    """The request for ``outgoing``; raises ValueError with a reason when it cannot be sent."""
    problem = phone_problem(outgoing.recipient)
    if problem:
        raise ValueError(problem)
    code = (outgoing.template or "").strip()
    if not code:
        raise ValueError(NO_TEMPLATE)
    known = account.templates.get(code)
    variables = template_params(outgoing.variables, known, f"TTS template {code}")
    params = {"CalledNumber": outgoing.recipient, "TtsCode": code}
    if variables:
        tts_param = json_param(variables)
        if len(tts_param) > TTS_PARAM_MAX:
            raise ValueError(
                f"the TTS variables are {len(tts_param)} characters as JSON; Alibaba Cloud takes"
                f" fewer than {TTS_PARAM_MAX + 1}"
            )
        params["TtsParam"] = tts_param
    if account.called_show_number:
        params["CalledShowNumber"] = account.called_show_number
    for name, value in (
        ("PlayTimes", account.play_times),
        ("Volume", account.volume),
        ("Speed", account.speed),
    ):
        if value is not None:
            params[name] = str(value)
    return CallRequest(params)
