"""Which recipients the voice channel calls: one mainland China mobile or landline number.

Mobile numbers are 11 digits (``13800138000``); landlines the area code with its leading 0 and
the local number, digits only (``01012345678``, ``057112345678``). Like SMS, other spellings
(``+86``, spaces, dashes) are refused with the bare form as a hint, because call-result
receipts name the callee in that form and the gateway matches them against the recipient.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

CALLEE = re.compile(r"1[3-9]\d{9}|0[1-9]\d{8,10}")
_PREFIXED = re.compile(r"(?:\+86|0086|86)(1[3-9]\d{9}|[1-9]\d{8,10})")


def callee_problem(recipient: str) -> str | None:
    """Why ``recipient`` is not a callable number in the bare form, or None."""
    if CALLEE.fullmatch(recipient):
        return None
    compact = re.sub(r"[\s()-]", "", recipient)
    prefixed = _PREFIXED.fullmatch(compact)
    if prefixed:
        bare = prefixed.group(1)
        bare = bare if re.fullmatch(r"1[3-9]\d{9}", bare) else "0" + bare
        if CALLEE.fullmatch(bare):
            return f"give the number without country code, spaces or dashes: {bare}"
    if CALLEE.fullmatch(compact):
        return f"give the number without spaces or dashes: {compact}"
    shown = "" if len(recipient) > 40 else f": {recipient!r}"
    return (
        "not a mainland China phone number (11-digit mobile, or area code with 0 and"
        f" number){shown}"
    )
