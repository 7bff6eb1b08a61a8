"""Text PostgreSQL cannot store: NUL characters (text and jsonb refuse U+0000) and unpaired
surrogates (not valid Unicode, so not encodable as UTF-8 at all).

The group commit looks for these only when the encoded batch shows a sign of one, so the walk
below costs nothing on the usual path and a message carrying one is refused on its own.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.errors import Unstorable

# How msgspec writes U+0000 in JSON. A literal backslash-u0000 typed by someone also matches
# (harmlessly: the walk then finds nothing).
NUL_IN_JSON = b"\\u0000"

# NewMessage fields under the names callers know them by
_FIELD_NAMES = {"account_name": "account"}


def _problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (U+0000), which cannot be stored"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "contains an unpaired surrogate (U+D800-U+DFFF), which is not valid Unicode"
    return None


def _walk(value: Any, path: str) -> tuple[str, str] | None:
    """(path, problem) of the first unstorable string in ``value``, keys included."""
    if isinstance(value, str):
        problem = _problem(value)
        return (path, problem) if problem else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key!r}]"
            if isinstance(key, str) and (problem := _problem(key)):
                return path, f"has a key that {problem}"
            if found := _walk(item, where):
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if found := _walk(item, f"{path}[{i}]"):
                return found
    return None


def unstorable(message: msgspec.Struct) -> Unstorable | None:
    """The error naming the first field of ``message`` the database cannot store, or None."""
    for name in message.__struct_fields__:
        found = _walk(getattr(message, name), _FIELD_NAMES.get(name, name))
        if found:
            field, problem = found
            # the path holds the keys it went through: keep their NULs out of the message too
            shown = field.replace("\x00", "\\u0000").encode(errors="backslashreplace").decode()
            return Unstorable(f"{shown} {problem}", shown)
    return None
