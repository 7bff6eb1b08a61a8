"""The floor for accept.py: an aiohttp server that answers POST /api/v1/messages with 202 and a
small JSON body and does nothing else (no auth, no validation, no database).

It runs like ``msggate serve``: one process, the event loop policy of gateway/cli.py
(uvloop when installed), an AppRunner without access log. Prints ``listening on PORT``.

    python bench/bare_server.py --port 8081
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from aiohttp import web

BODY = (
    b'{"id":"00000000-0000-7000-8000-000000000000","deliveries":[{"id":'
    b'"00000000-0000-7000-8000-000000000001","recipient":"rcpt0@example.com",'
    b'"status":"queued"}],"replayed":false}'
)


async def post_message(request: web.Request) -> web.Response:
    await request.read()  # the gateway reads the body too; keep-alive needs it drained anyway
    return web.Response(body=BODY, status=202, content_type="application/json")


def _event_loop_policy() -> str:
    """Same policy as the gateway: use its own function so the two never drift apart."""
    try:
        from gateway.cli import _event_loop_policy
    except ImportError:  # run outside the project: mirror it
        try:
            import uvloop
        except ImportError:
            return "asyncio"
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        _event_loop_policy()
    return type(asyncio.get_event_loop_policy()).__module__


async def serve(host: str, port: int) -> None:
    app = web.Application()
    app.router.add_post("/api/v1/messages", post_message)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        print(f"listening on {port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    policy = _event_loop_policy()
    print(f"event loop policy: {policy}", flush=True)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
