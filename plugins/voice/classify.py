"""SingleCallByTts answers into outcomes (docs/providers.md §6.3, VMS error-code list).

Voice shares the ``isv.*``/``isp.*`` family of SMS (:data:`plugins.aliyun.errors.
COMMUNICATION_RULES`); these are its own codes. Per-callee flow control follows the message's
window like SMS (:func:`plugins.aliyun.channel.business_outcome`, which the channel uses with
these rules).
"""

from __future__ import annotations

import logging

from plugins.aliyun.errors import Kind, Rule, Rules

log = logging.getLogger(__name__)

_TEMPLATE = Rule(Kind.CONFIG, None, "the TTS template is not approved or not this account's")
VOICE_RULES: Rules = {
    "isv.TTS_TEMPLATE_ILLEGAL": _TEMPLATE,
    "isv.TEMPLATE_ILLEGAL": _TEMPLATE,
    "isv.DISPLAY_NUMBER_ILLEGAL": Rule(
        Kind.CONFIG, "called_show_number", "the caller number is not this account's"
    ),
}
