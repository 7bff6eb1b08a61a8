"""Named SQL queries, kept in ``.sql`` files: ``-- name: x`` starts query ``x``."""

from __future__ import annotations

import re
from importlib import resources

_HEADER = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load_queries(filename: str = "queries.sql") -> dict[str, str]:
    text = resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")
    parts = _HEADER.split(text)
    queries = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        sql = "\n".join(line for line in body.splitlines() if not line.startswith("--")).strip()
        queries[name] = sql.rstrip(";")
    return queries


def like_escape(text: str) -> str:
    """``text`` with LIKE's wildcards escaped (backslash is the default escape character)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def contains(text: str | None) -> str | None:
    """The (I)LIKE pattern matching values that contain ``text`` literally; None for no text.

    A search box is text, not a pattern: ``%`` or ``_`` typed in it must not match everything.
    """
    return None if text is None else "%" + like_escape(text) + "%"


QUERIES = load_queries()
