"""A TCP proxy the tests can cut and restore, to take a real server "down" for one client, or
freeze and thaw, to make it hang as a stopped process would (never done to the real server, which
other test runs share)."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``cut()`` drops every connection and refuses new;
    ``freeze()`` holds bytes (connections are still accepted, as the kernel of a stopped server
    would) until ``thaw()`` forwards them."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._requests = asyncio.Event()  # set: bytes to the server flow
        self._replies = asyncio.Event()  # set: bytes from the server flow
        self._requests.set()
        self._replies.set()

    async def start(self, port: int = 0) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port or self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        await self._requests.wait()  # frozen: the client's first bytes wait with it
        if writer.transport.is_closing():  # cut meanwhile
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.add(up_writer)
        for src, dst, flowing in (
            (reader, up_writer, self._requests),
            (up_reader, writer, self._replies),
        ):
            task = asyncio.create_task(self._pipe(src, dst, flowing))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter, flowing: asyncio.Event
    ) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                await flowing.wait()
                dst.write(data)
                await dst.drain()
        dst.close()

    def freeze(self, requests: bool = True) -> None:
        """Hold every byte from now on; ``requests=False`` holds only the server's replies (it
        works, but its answers arrive late: a commit the client does not hear of in time)."""
        self._replies.clear()
        if requests:
            self._requests.clear()

    def thaw(self) -> None:
        """Forward what was held, and everything after it."""
        self._requests.set()
        self._replies.set()

    async def cut(self) -> None:
        """Close the listener and every open connection: the server looks down."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def restore(self) -> None:
        await self.start(self.port)

    async def close(self) -> None:
        await self.cut()
        self.thaw()  # lets connections that waited out a freeze see the cut and end
