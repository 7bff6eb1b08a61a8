"""How many billed SMS a text is (docs/providers.md §5.5, Alibaba Cloud doc 44335).

- Mainland China (``domestic=True``, what this channel sends): every character counts 1 —
  CJK, Latin, digits, punctuation, full or half width — and the count includes the signature
  with the ``【】`` the platform adds. Up to 70 characters is one message; longer ones are
  billed in parts of 67 (160 characters: 67 + 67 + 26 = 3).
- International: text made only of GSM 03.38 characters is GSM-7: 160 per message, 153 per
  part, the extension characters ``| ^ € { } [ ] ~ \\`` (and form feed) counting 2. Any other
  character turns the whole text into UCS-2: 70 / 67 UTF-16 code units (an emoji is 2).

The recipient still sees one long message; the parts only matter for billing.
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)

MAX_LENGTH = 500  # characters, signature included (doc 44335)
UCS2_SINGLE, UCS2_PART = 70, 67
GSM7_SINGLE, GSM7_PART = 160, 153

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("|^€{}[]~\\\f")


def signed_text(sign_name: str, text: str) -> str:
    """The text as counted: the signature in ``【】`` followed by the message."""
    return f"【{sign_name}】{text}"


def gsm7_length(text: str) -> int | None:
    """Septets ``text`` takes in GSM-7, or None if a character is not in GSM 03.38."""
    length = 0
    for char in text:
        if char in GSM7_BASIC:
            length += 1
        elif char in GSM7_EXTENSION:
            length += 2
        else:
            return None
    return length


def ucs2_length(text: str) -> int:
    """UTF-16 code units (a character outside the BMP, such as an emoji, is 2)."""
    return len(text.encode("utf-16-le")) // 2


def _parts(length: int, single: int, part: int) -> int:
    return 1 if length <= single else math.ceil(length / part)


def count_segments(text: str, *, domestic: bool = True) -> int:
    """Billed messages for ``text`` (give it with the signature: see :func:`signed_text`).

    An empty text still costs one message.
    """
    if domestic:
        return _parts(len(text), UCS2_SINGLE, UCS2_PART)
    septets = gsm7_length(text)
    if septets is not None:
        return _parts(septets, GSM7_SINGLE, GSM7_PART)
    return _parts(ucs2_length(text), UCS2_SINGLE, UCS2_PART)
