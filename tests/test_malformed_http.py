"""A malformed HTTP request is answered 400 and logged as one short line, never a traceback:
a client sending thousands of them cannot fill the logs (issue: hostile input)."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

MALFORMED = [
    b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",  # a NUL in a header
    b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",  # a header without a colon
    b"GET /api/v1/health HTTP/9.9\r\nHost: x\r\n\r\n",  # no such version
]


async def answer(url: str, raw: bytes) -> bytes:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(200), 30)
    finally:
        writer.close()


async def test_malformed_requests_get_400_and_one_short_log_line_each_at_most(make_gateway, caplog):
    gw = await make_gateway(dispatch=False)
    caplog.set_level(logging.INFO, logger="aiohttp.server")
    for raw in MALFORMED * 20:
        status_line = (await answer(gw.url, raw)).split(b"\r\n", 1)[0]
        assert status_line.startswith(b"HTTP/1.") and b" 400 " in status_line, (raw, status_line)
    status, body = await gw.request("GET", "/api/v1/health")
    assert status == 200, body  # and the gateway keeps serving
    server = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert not [r for r in server if r.exc_info or r.levelno >= logging.WARNING], server[:1]
    assert 1 <= len(server) < 30, len(server)  # 60 requests, one line a second at most
    assert "malformed request" in server[0].getMessage()
