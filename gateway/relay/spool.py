"""SMTP DATA into a spool file, then one message at a time within the body budget.

aiosmtpd keeps a message as a list of one object per line while it comes (several times its
size, for as long as the client takes to send it). Here the data goes to a spooled temporary
file as it comes (in memory up to ``IN_MEMORY`` bytes, then on disk in the system's temporary
folder), in large pieces rather than line by line; only once it is complete does it take its
size from the gateway's body budget (``gateway.bodies``, shared with the HTTP API), get loaded
as one bytes object and go to the handler. A message that waits too long for the budget is
answered 451 (the client keeps it and tries again).

The end of the data is found without reading past it, so a command the client pipelined after
the final "." is left for the session. The replies and limits are aiosmtpd's: dot-stuffing
undone, 552 over the size limit, 500 for a line over the line limit, both sent only after the
final "." (RFC 5321 §4.2.5).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from typing import IO, Any

from aiosmtpd.smtp import MISSING, SMTP

from gateway.bodies import BodyBudget, Busy

log = logging.getLogger(__name__)

IN_MEMORY = 1024 * 1024  # bytes of a message kept in memory before it goes to disk
END = b"\r\n.\r\n"
TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"  # aiosmtpd's texts: session.replies
TOO_MUCH = "552 Error: Too much mail data"
BUSY = "451 4.3.1 Too many large messages at once; please try again later"
_START, _AFTER_CR, _BULK = "start of a line", "after a CR", "in bulk"  # receive's states


class _Writer:
    """Undoes dot-stuffing, counts the size, checks line lengths, writes complete lines."""

    def __init__(self, out: IO[bytes], size_limit: int | None, line_limit: int) -> None:
        self.out = out
        self.size_limit = size_limit
        self.max_line = line_limit - 2  # aiosmtpd's limit counts the CRLF
        self.size = 0
        self.problem: str | None = None
        self._partial = b""  # after the last CRLF written: the start of a line

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        if self.problem is None and self.size_limit and self.size > self.size_limit:
            self._fail(TOO_MUCH)
        if self.problem is not None:
            return
        data = self._partial + data if self._partial else data
        end = data.rfind(b"\r\n") + 2
        if end == 1:  # no line end yet
            self._partial = data
            if len(data) > self.max_line + 1:  # (+1: a CR whose LF is still to come)
                self._fail(TOO_LONG)
            return
        lines, self._partial = data[:end], data[end:]
        if len(lines) > self.max_line and max(map(len, lines.split(b"\r\n"))) > self.max_line:
            self._fail(TOO_LONG)
            return
        if lines.startswith(b"."):  # every piece written starts a line
            lines = lines[1:]
        self.out.write(lines.replace(b"\r\n.", b"\r\n"))

    def _fail(self, problem: str) -> None:
        self.problem = problem
        self._partial = b""
        self.out.truncate(0)


async def receive(reader: asyncio.StreamReader, writer: _Writer) -> None:
    """Read up to and including the line "." and feed what comes before it to ``writer``.

    In bulk, ``readuntil(END)`` finds the end, and when the reader's buffer fills without it,
    LimitOverrunError says how much can be taken without splitting a possible end. That needs
    all of a possible end unread, which it is not once the bytes before it were taken one by
    one: so at the start of a line, and after a CR, bytes are read singly (a line that starts
    with "." whole: a bare "." ends the data) until one that cannot begin or continue an end.
    """
    state = _START
    while True:
        if state == _BULK:
            try:
                chunk = await reader.readuntil(END)
            except asyncio.LimitOverrunError as exc:
                writer.feed(await reader.read(exc.consumed))
                continue
            writer.feed(chunk[:-3])  # the CRLF before "." ends the last line
            return
        byte = await reader.readexactly(1)
        if state == _START and byte == b".":
            try:
                line = byte + await reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as exc:  # a long line: no end in it
                writer.feed(byte + await reader.read(exc.consumed))
                state = _BULK
                continue
            if line == b".\r\n":
                return
            writer.feed(line)
            continue
        writer.feed(byte)
        if byte == b"\r":
            state = _AFTER_CR
        elif state == _AFTER_CR and byte == b"\n":
            state = _START
        else:
            state = _BULK


async def smtp_data(server: SMTP, arg: str, bodies: BodyBudget) -> None:
    """aiosmtpd's ``smtp_DATA``, with the data spooled and the handler run within the budget."""
    if await server.check_helo_needed() or await server.check_auth_needed("DATA"):
        return
    envelope: Any = server.envelope
    if not envelope.rcpt_tos:
        await server.push("503 Error: need RCPT command")
        return
    if arg:
        await server.push("501 Syntax: DATA")
        return
    await server.push("354 End data with <CR><LF>.<CR><LF>")
    with tempfile.SpooledTemporaryFile(IN_MEMORY) as spool:
        writer = _Writer(spool, server.data_size_limit, server.line_length_limit)
        await receive(server._reader, writer)
        if writer.problem is not None:
            server._set_post_data_state()
            await server.push(writer.problem)
            return
        try:
            async with bodies.hold(writer.size):
                spool.seek(0)
                envelope.original_content = envelope.content = spool.read()
                spool.close()  # its memory or its file is not needed any more
                status = await server._call_handler_hook("DATA")
        except Busy:
            status = BUSY
        finally:
            server._set_post_data_state()  # a new envelope: the message's bytes go with the old
    await server.push("250 OK" if status is MISSING else status)
