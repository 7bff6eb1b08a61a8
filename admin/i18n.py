"""Translations: ``admin/locales/<language>.toml``, zh-CN first, English too.

Keys are dotted (``menu.accounts``); a text may name ``{placeholders}`` filled from keyword
arguments. A key missing from a catalogue falls back to English, then to the key itself (a test
keeps the catalogues complete).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any

LANGUAGES = ("zh-CN", "en")
DEFAULT = "zh-CN"
FALLBACK = "en"

Translate = Callable[..., str]


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = str(value)
    return flat


@cache
def catalogue(language: str) -> dict[str, str]:
    text = resources.files("admin").joinpath("locales", f"{language}.toml").read_text("utf-8")
    return _flatten(tomllib.loads(text))


def pick(language: str | None) -> str:
    return language if language in LANGUAGES else DEFAULT


def translator(language: str) -> Translate:
    primary = catalogue(pick(language))
    fallback = catalogue(FALLBACK)

    def translate(key: str, **args: Any) -> str:
        text = primary.get(key) or fallback.get(key) or key
        if args:
            try:
                return text.format(**args)
            except (KeyError, IndexError, ValueError):
                return text
        return text

    return translate


def has(language: str, key: str) -> bool:
    return key in catalogue(pick(language))
