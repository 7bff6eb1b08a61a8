"""A real listening socket that records who connects to it and hangs up: a stand-in for a host an
account should never reach (a changed SMTP host, a changed API endpoint)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class ConnectionRecorder:
    """Listens on 127.0.0.1 and a free port; ``connections`` counts accepted connections.

    Each connection is closed at once, so a client that reaches it fails fast (an SMTP client
    gets no greeting, an HTTP client no answer) instead of waiting for a timeout.
    """

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def start(self) -> ConnectionRecorder:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@contextlib.asynccontextmanager
async def recording() -> AsyncIterator[ConnectionRecorder]:
    """``async with recording() as rec:`` a ConnectionRecorder for the block."""
    recorder = await ConnectionRecorder().start()
    try:
        yield recorder
    finally:
        await recorder.close()
