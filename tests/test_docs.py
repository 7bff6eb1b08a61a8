"""The plugin docs cannot drift from the code: the hook reference is generated and checked.

``docs/hooks.md`` must be exactly what ``docs/gen_hooks.py`` renders from ``gateway/hookspecs.py``
now, the tutorial must mention every hook, and every file of the example it points at must exist.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from gateway import hookspecs

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

HOOKS = [
    name
    for name, value in vars(hookspecs).items()
    if inspect.isfunction(value) and hasattr(value, "msggate_spec")
]


def _gen_hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_hooks", DOCS / "gen_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hooks_md_is_what_gen_hooks_renders_from_the_hookspecs_now() -> None:
    rendered = _gen_hooks().render()
    current = (DOCS / "hooks.md").read_text(encoding="utf-8")
    assert current == rendered, "docs/hooks.md is stale: run `python docs/gen_hooks.py`"


def test_gen_hooks_check_mode_agrees() -> None:
    result = subprocess.run(
        [sys.executable, str(DOCS / "gen_hooks.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_its_section_in_the_reference_and_is_in_the_tutorial(name: str) -> None:
    assert f"## `{name}`" in (DOCS / "hooks.md").read_text(encoding="utf-8")
    assert name in (DOCS / "plugins.md").read_text(encoding="utf-8"), (
        f"docs/plugins.md does not mention {name}"
    )


def test_files_the_tutorial_points_at_exist() -> None:
    text = (DOCS / "plugins.md").read_text(encoding="utf-8")
    paths = set(re.findall(r"\b((?:examples|gateway|docs|tests)/[\w./-]+\.(?:py|md|toml))", text))
    assert paths, "the tutorial points at no file"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"docs/plugins.md points at files that do not exist: {missing}"
