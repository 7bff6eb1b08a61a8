"""Which recipients the SMS channel takes: mainland China mobile numbers, in one form.

A recipient is the bare 11-digit number (``13800138000``). ``+86``/``0086``/``86`` prefixes,
spaces and dashes are refused with a hint rather than rewritten: the gateway stores the
recipient as given, de-duplicates recipients by that string, and matches receipts (which carry
the bare number) against it — two spellings of one number would mean two messages and a
receipt that finds neither.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

MOBILE = re.compile(r"1[3-9]\d{9}")
_PREFIXED = re.compile(r"(?:\+86|0086|86)(1[3-9]\d{9})")


def mobile_problem(recipient: str) -> str | None:
    """Why ``recipient`` is not a mainland mobile number in the bare 11-digit form, or None."""
    if MOBILE.fullmatch(recipient):
        return None
    compact = re.sub(r"[\s-]", "", recipient)
    prefixed = _PREFIXED.fullmatch(compact)
    if prefixed or MOBILE.fullmatch(compact):
        bare = prefixed.group(1) if prefixed else compact
        return f"give the number as 11 digits without country code or spaces: {bare}"
    if len(recipient) > 40:
        return "not a mainland China mobile number (11 digits starting with 1)"
    return f"not a mainland China mobile number (11 digits starting with 1): {recipient!r}"
