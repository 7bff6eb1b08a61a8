"""Template parameters as the communication APIs take them: a JSON object of strings.

SMS ``TemplateParam`` and voice ``TtsParam`` both want a JSON *string* holding an object whose
values are strings; a number sent as a number is refused (``isv.INVALID_JSON_PARAM``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)


def string_variables(variables: dict[str, Any]) -> dict[str, str]:
    """Variables as strings (numbers and booleans converted); ValueError for lists/objects."""
    out: dict[str, str] = {}
    for name, value in variables.items():
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            out[name] = str(value)
        elif value is None:
            out[name] = ""
        else:
            raise ValueError(
                f"variable {name!r} must be a string or a number, not a list or object"
            )
    return out


def json_param(variables: dict[str, str]) -> str:
    """The parameter's JSON string: compact, non-ASCII characters as they are."""
    return json.dumps(variables, ensure_ascii=False, separators=(",", ":"))
