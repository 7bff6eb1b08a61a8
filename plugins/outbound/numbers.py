"""Which recipients the outbound channel calls: mainland China mobile or landline numbers.

A recipient is the bare number as Alibaba Cloud wants it and reports it back: 11 digits for a
mobile (``13800138000``), or a landline with its area code (``057188889999``). Prefixes such as
``+86`` are refused with a hint rather than rewritten, so that one number has one spelling in
the gateway (it de-duplicates recipients by that string). Robot calls are mainland only.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

MOBILE = re.compile(r"1[3-9]\d{9}")
LANDLINE = re.compile(r"0[1-9]\d{8,10}")
_PREFIXED = re.compile(r"(?:\+86|0086|86)(1[3-9]\d{9})")


def number_problem(recipient: str) -> str | None:
    """Why ``recipient`` is not a callable mainland number in its bare form, or None."""
    if MOBILE.fullmatch(recipient) or LANDLINE.fullmatch(recipient):
        return None
    compact = re.sub(r"[\s()-]", "", recipient)
    prefixed = _PREFIXED.fullmatch(compact)
    if prefixed or MOBILE.fullmatch(compact) or LANDLINE.fullmatch(compact):
        bare = prefixed.group(1) if prefixed else compact
        return f"give the number as digits only, without country code or spaces: {bare}"
    shown = "" if len(recipient) > 40 else f": {recipient!r}"
    return (
        "not a mainland China phone number (a mobile of 11 digits starting with 1, or a"
        f" landline with its area code starting with 0){shown}"
    )
