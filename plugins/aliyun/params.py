"""Template parameters as the communication APIs take them: a JSON object of strings.

SMS ``TemplateParam`` and voice ``TtsParam`` both want a JSON *string* holding an object whose
values are strings; a number sent as a number is refused (``isv.INVALID_JSON_PARAM``). An
approved template names its parameters as ``${name}`` in its text; when an account knows the
text, :func:`template_params` checks the message's variables against it before any call.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

log = logging.getLogger(__name__)

VARIABLE = re.compile(r"\$\{(\w+)\}")
"""A ``${name}`` variable in a template's text."""


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


def variable_names(text: str) -> list[str]:
    """The ``${name}`` variables of a template's text, each once, in order."""
    return list(dict.fromkeys(VARIABLE.findall(text)))


def render(text: str, variables: dict[str, str]) -> str:
    """The template's text with its variables filled in (an unknown one left as it is)."""
    return VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), text)


def template_params(variables: dict[str, Any], text: str | None, label: str) -> dict[str, str]:
    """The parameters to send for a template: the variables as strings (see
    :func:`string_variables`), and when the template's ``text`` is known exactly its
    ``${name}`` ones; ValueError naming the missing ones (``label`` names the template)."""
    values = string_variables(variables)
    if text is None:
        return values
    wanted = variable_names(text)
    missing = [name for name in wanted if name not in values]
    if missing:
        raise ValueError(f"{label} needs the variables: {', '.join(missing)}")
    return {name: values[name] for name in wanted}
