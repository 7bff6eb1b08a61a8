"""Malformed HTTP requests (a NUL in a header, a broken request line): aiohttp answers them 400
and logs each as an ERROR with a traceback, so any client could fill the logs. This filter keeps
one short line per such request, and at most one a second with a count of the others."""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class MalformedRequests(logging.Filter):
    """On aiohttp's server logger: a client's malformed request becomes one INFO line."""

    def __init__(self, every: float = 1.0) -> None:
        super().__init__()
        self.every = every
        self._last = -every
        self._quiet = 0  # lines held back since the last one written

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or (exc.code or 500) >= 500:
            return True  # our own failure: keep it whole
        now = time.monotonic()
        if now - self._last < self.every:
            self._quiet += 1
            return False
        held, self._quiet, self._last = self._quiet, 0, now
        said = record.getMessage()  # "Error handling request from <address>"
        record.msg = "%s: answered %s, malformed request: %s" + (
            f" (and {held} more since the last line)" if held else ""
        )
        record.args = (said, exc.code, exc.message)
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.exc_info = record.exc_text = None
        return logging.getLogger(SERVER_LOGGER).isEnabledFor(logging.INFO)


def quiet_malformed_requests() -> None:
    """Install the filter once per process (every app of a test run shares the logger)."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, MalformedRequests) for f in logger.filters):
        logger.addFilter(MalformedRequests())
