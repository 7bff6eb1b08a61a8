"""What PostgreSQL can store: text without NUL or lone surrogates, JSON nested not too deeply.

``text`` columns and ``jsonb`` refuse ``\\u0000`` (and UTF-8 cannot encode a lone surrogate),
so such a value would fail its whole group-commit batch with a 500. Every edge (HTTP bodies,
query and path parameters) asks :func:`find_unstorable` first and refuses with a 4xx naming
the field; the group commit asks :func:`unstorable` of a batch that shows a sign of one, so that
a value an edge let through fails only its own message. The walk is iterative and bounded by
:data:`MAX_JSON_DEPTH`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import msgspec

from gateway.errors import Unstorable

MAX_JSON_DEPTH = 32
"""How deeply JSON containers (objects, arrays) may nest, the body's own object included."""

NUL = "contains a NUL character (\\u0000), which cannot be stored: remove it"
SURROGATE = "contains a lone UTF-16 surrogate, which is not valid Unicode"
TOO_DEEP = f"is nested deeper than {MAX_JSON_DEPTH} levels of objects and arrays"


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored, or None."""
    if "\x00" in text:
        return NUL
    if not text.isascii():  # isascii is O(1) on CPython: most strings stop here
        try:
            text.encode()
        except UnicodeEncodeError:
            return SURROGATE
    return None


@cache
def _fields(kind: type[msgspec.Struct]) -> tuple[tuple[str, str], ...]:
    return tuple((f.name, f.encode_name) for f in msgspec.structs.fields(kind))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def find_unstorable(value: Any, path: str = "") -> tuple[str, str] | None:
    """``(field path, problem)`` of the first value that cannot be stored, or None.

    Paths are written as msgspec writes them in validation errors (``variables.a[2]``), so a
    caller's error names fields the same way whichever check found them. Struct fields are
    named by their wire names; a bad key of a mapping is reported at the mapping.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return where, problem
            continue
        if not isinstance(item, msgspec.Struct | Mapping | list | tuple):
            continue
        level = depth + 1
        if level > MAX_JSON_DEPTH:
            return where, TOO_DEEP
        children: list[tuple[Any, str, int]] = []
        if isinstance(item, msgspec.Struct):
            for name, wire in _fields(type(item)):
                children.append((getattr(item, name), _join(where, wire), level))
        elif isinstance(item, Mapping):
            for key, child in item.items():
                if isinstance(key, str) and (problem := text_problem(key)):
                    return where, f"has a key that {problem}"
                children.append((child, _join(where, str(key)), level))
        else:
            children.extend((child, f"{where}[{i}]", level) for i, child in enumerate(item))
        stack.extend(reversed(children))  # popped in order: the first bad field is named
    return None


# -- the group commit's own defence ------------------------------------------------------------

# How msgspec writes U+0000 in JSON. A literal backslash-u0000 typed by someone also matches
# (harmlessly: the walk then finds nothing). The group commit walks a batch's messages only when
# their JSON shows this (or a body may hold a NUL or surrogate), so the usual path costs nothing.
NUL_IN_JSON = b"\\u0000"

# NewMessage fields under the names callers know them by
_FIELD_NAMES = {"account_name": "account"}


def unstorable(message: msgspec.Struct) -> Unstorable | None:
    """The error naming the first field of ``message`` the database cannot store, or None: the
    group commit refuses that message alone instead of failing its batch."""
    found = find_unstorable(message)
    if found is None:
        return None
    field, problem = found
    head = re.match(r"\w+", field)
    if head and head.group() in _FIELD_NAMES:
        field = _FIELD_NAMES[head.group()] + field[head.end() :]
    # the path holds the keys it went through: keep any NUL out of the message too
    shown = field.replace("\x00", "\\u0000").encode(errors="backslashreplace").decode()
    return Unstorable(f"{shown} {problem}", shown)
