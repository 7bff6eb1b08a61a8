"""Mainland China phone numbers as the Alibaba Cloud communication products take them.

SMS, voice notifications and robot calls name a number in its bare form, and their receipts
report it back in that form: 11 digits for a mobile (``13800138000``), the area code with its
leading 0 and the local number for a landline (``01012345678``, ``057188889999``). The gateway
keeps one spelling per number (it de-duplicates a message's recipients and matches receipts by
it), so the channels turn what people type — ``+86 138-0013-8000``, ``0086 10 1234 5678``,
``(0571) 8888-9999``, numbers pasted from a spreadsheet — into the bare form with
:func:`normalize` when a message is accepted, then check the result with
:func:`mobile_problem` (SMS) or :func:`phone_problem` (calls).
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

MOBILE = re.compile(r"1[3-9]\d{9}")
LANDLINE = re.compile(r"0[1-9]\d{8,10}")
COUNTRY_PREFIXES = ("+86", "0086", "86")
_SEPARATORS = re.compile(r"[\s()-]")
_SHOWN_MAX = 40  # longer input is not echoed back in a refusal


def _bare(number: str) -> bool:
    return bool(MOBILE.fullmatch(number) or LANDLINE.fullmatch(number))


def normalize(recipient: str) -> str:
    """The bare form of a mainland number, whatever its spacing and country code.

    Spaces, dashes and parentheses go; a ``+86``, ``0086`` or ``86`` prefix goes too, and a
    landline written after it without its trunk 0 gets it back (``+86 10 1234 5678`` →
    ``01012345678``). What is not a mainland number in any of these spellings comes back as
    given (without surrounding white space), for the check to explain.
    """
    given = recipient.strip()
    compact = _SEPARATORS.sub("", given)
    if _bare(compact):
        return compact
    for prefix in COUNTRY_PREFIXES:
        if compact.startswith(prefix):
            national = compact[len(prefix) :]
            if _bare(national):
                return national
            if LANDLINE.fullmatch("0" + national):
                return "0" + national
    return given


def _refusal(what: str, number: str) -> str:
    return what if len(number) > _SHOWN_MAX else f"{what}: {number!r}"


def mobile_problem(number: str) -> str | None:
    """Why ``number`` (normalised) is not a mainland mobile number, or None."""
    if MOBILE.fullmatch(number):
        return None
    return _refusal("not a mainland China mobile number (11 digits starting with 1)", number)


def phone_problem(number: str) -> str | None:
    """Why ``number`` (normalised) is not a mainland mobile or landline number, or None."""
    if _bare(number):
        return None
    return _refusal(
        "not a mainland China phone number (a mobile of 11 digits starting with 1, or a"
        " landline with its area code starting with 0)",
        number,
    )
