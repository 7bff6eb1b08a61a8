"""What PostgreSQL can store: text without NUL or lone surrogates, JSON nested not too deeply.

``text`` columns and ``jsonb`` refuse ``\\u0000`` (and UTF-8 cannot encode a lone surrogate),
so such a value would fail its whole group-commit batch with a 500. Every edge (HTTP bodies,
query and path parameters) asks :func:`find_unstorable` first and refuses with a 4xx naming
the field. The walk is iterative and bounded by :data:`MAX_JSON_DEPTH`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import msgspec

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
