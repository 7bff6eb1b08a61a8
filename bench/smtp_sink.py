"""A minimal SMTP sink (aiosmtpd) for deliver.py when Postfix's smtp-sink is not installed.

Accepts every message and throws it away; prints ``mesg=N`` (messages so far) after each one,
like ``smtp-sink -c``, so the benchmark can count what arrived.

    python bench/smtp_sink.py --port 2525
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        self.count += 1
        sys.stdout.write(f"mesg={self.count}\n")
        sys.stdout.flush()
        return "250 2.0.0 Ok: queued"


async def serve(host: str, port: int) -> None:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="bench-sink", ident="bench-sink"), host, port
    )
    print(f"listening on {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
