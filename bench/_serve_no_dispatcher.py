"""`msggate serve` exactly as the CLI runs it, but without the dispatcher (accept.py)."""

from __future__ import annotations

import functools
import sys

import gateway.app

gateway.app.create_app = functools.partial(gateway.app.create_app, dispatch=False)

from gateway.cli import main  # noqa: E402  (imports create_app lazily, so it sees the patch)

if __name__ == "__main__":
    sys.exit(main(["serve"]))
