"""msggate: an enterprise messaging gateway. Plugins import ``hookimpl`` from here."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("msggate")

__all__ = ["__version__", "hookimpl"]
