"""Form state for templates: submitted values, and errors placed next to their fields."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from admin.i18n import Translate
from admin.render import translate
from gateway.errors import GatewayError, Invalid
from gateway.storable import text_problem

MAX_FIELD = 100_000  # characters in one submitted field; more is refused, never truncated

# Service messages we say in the operator's language; anything else (a provider's reason) is
# shown as the service gave it.
_KNOWN = {
    "this field is required": "errors.required",
}
_INDEX = re.compile(r"\[\d+\]$")
_LENGTH = re.compile(r"^Expected `(?:str|array)` of length (>=|<=) (\d+)$")


def _say(message: str, t: Translate) -> str:
    """A service's message in the operator's language where we know it, else as it is."""
    if message in _KNOWN:
        return t(_KNOWN[message])
    match = _LENGTH.match(message)
    if match:
        op, limit = match.groups()
        if op == ">=" and limit == "1":
            return t("errors.required")
        return t("errors.too_long" if op == "<=" else "errors.too_short", limit=limit)
    return message


@dataclass
class Form:
    """What a form shows: ``values`` to fill in, ``errors`` by field, and a form-level error."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def value(self, name: str, default: Any = "") -> Any:
        return self.values.get(name, default)

    @property
    def failed(self) -> bool:
        return bool(self.errors or self.error)

    def fail(
        self,
        exc: GatewayError,
        t: Translate,
        fields: Iterable[str],
        strip: str = "",
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        """Put a service's refusal next to the field it names, or above the form.

        ``strip`` removes a prefix from the field path (``config.``); ``recipients[2]`` is the
        ``recipients`` field; ``aliases`` renames service fields to form fields.
        """
        message = _say(exc.message, t)
        name = exc.field or ""
        if strip and name.startswith(strip):
            name = name[len(strip) :]
        name = _INDEX.sub("", name.split(".", 1)[0])
        name = (aliases or {}).get(name, name)
        if name and name in set(fields):
            self.errors[name] = message
        else:
            self.error = message


async def read_form(request: web.Request) -> dict[str, str]:
    """The submitted fields (the last value of each), refusing absurdly long ones."""
    data = await request.post()
    values: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, str):
            if len(value) > MAX_FIELD:
                raise web.HTTPRequestEntityTooLarge(MAX_FIELD, len(value))
            refuse_unstorable(request, key, value)
            values[key] = value
    return values


def parse_mapping(text: str) -> dict[str, str]:
    """``KEY=value`` lines as a dict (blank lines skipped); ValueError("errors.mapping") for a
    line without ``=`` or a key."""
    mapping = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ValueError("errors.mapping")
        mapping[key.strip()] = value.strip()
    return mapping


def parse_json(text: str) -> Any:
    """JSON text as a value; ValueError("errors.json") when it is not JSON (or nests absurdly
    deep)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("errors.json") from None


def refuse_unstorable(request: web.Request, field: str, value: str) -> None:
    """Invalid (the error page, in the user's language) for text the database cannot store:
    a browser never sends a NUL, so this is a hand-made request, not a form to fix."""
    if text_problem(field) or text_problem(value):
        raise Invalid(translate(request)("errors.unstorable", field=field[:60]), field)


def page_number(request: web.Request, name: str = "page") -> int:
    raw = request.query.get(name, "1")
    try:
        return max(1, min(int(raw), 10_000))
    except ValueError:
        return 1


@dataclass
class Page:
    """One page of a list kept in memory (accounts, rules, users ...)."""

    items: list[Any]
    page: int
    pages: int
    total: int

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


PER_PAGE = 20


def paginate(items: list[Any], page: int, per_page: int = PER_PAGE) -> Page:
    total = len(items)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    start = (page - 1) * per_page
    return Page(items[start : start + per_page], page, pages, total)
