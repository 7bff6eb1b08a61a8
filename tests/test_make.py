"""The Makefile keeps `make run`'s environment to msggate's own plugins.

`make test` also tests the example plugin, a separate distribution; installing it into the
environment `make run` uses would show its channel in the next `make run`.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = "examples/msggate-webhook"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _commands(target: str) -> list[list[str]]:
    """Every command ``make TARGET`` would run, each target considered out of date (``-B``)."""
    out = subprocess.run(
        ["make", "--dry-run", "--always-make", "--no-print-directory", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [shlex.split(line) for line in out.splitlines() if line.strip()]


def _run_environment() -> str:
    """The environment `make run` starts msggate from (the folder before ``/bin/msggate``)."""
    serve = [c for c in _commands("run") if c and c[0].endswith("/bin/msggate")]
    assert serve, "make run does not start msggate from an environment's bin folder"
    return serve[0][0].rsplit("/bin/", 1)[0]


def test_make_test_installs_the_example_plugin_outside_the_environment_make_run_uses():
    run_env = _run_environment()
    installs = [c for c in _commands("test") if "pip" in c[0] and "install" in c]
    into_run_env = [c for c in installs if c[0].startswith(run_env + "/")]
    assert into_run_env, "make test no longer installs msggate for its own tests"
    for command in into_run_env:
        assert not any(EXAMPLE in arg for arg in command), (
            f"make test installs the example plugin where make run finds it: {command}"
        )
    assert any(EXAMPLE in arg for c in installs for arg in c), "the example plugin is not set up"


def test_make_test_runs_the_example_plugin_tests_with_the_example_environment():
    run_env = _run_environment()
    example_runs = [
        c for c in _commands("test") if "pytest" in c[0] and any(EXAMPLE in a for a in c)
    ]
    assert example_runs, "make test no longer runs the example plugin's tests"
    for command in example_runs:
        assert not command[0].startswith(run_env + "/"), command
