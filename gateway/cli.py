"""The ``msggate`` command: serve, apikey, user, send, plugins, migrate, secret-key."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gateway
from gateway.config import SETTING_NAMES, ConfigError, Settings, env_name, load_settings

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("gateway")


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    for name in SETTING_NAMES:
        default = Settings.__struct_defaults__[SETTING_NAMES.index(name)]
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=None,
            metavar="VALUE",
            help=f"env {env_name(name)}" + (f" (default {default})" if default is not None else ""),
        )


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings({n: getattr(args, n, None) for n in SETTING_NAMES})


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# -- serve ------------------------------------------------------------------------------------


async def _serve(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM, which are honoured from the start: a signal during start-up
    cancels it, and whatever had started (the embedded PostgreSQL among it) is stopped."""
    from aiohttp import web

    from gateway.app import create_app

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(create_app(settings), access_log=None, handle_signals=False)
    starting = asyncio.create_task(_start(runner, settings))
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            log.info("stopping during start-up")
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return
        starting.result()  # a start-up error (a port in use ...) ends here
        await stopping
        log.info("shutting down")
    finally:
        stopping.cancel()
        # Also after a failed or cancelled start: the contexts that did start are closed.
        await runner.cleanup()


async def _start(runner: web.AppRunner, settings: Settings) -> None:
    """Start the application and its HTTP site, run the first-run set-up, print the banner."""

    from gateway.app import http_site
    from gateway.bootstrap import banner, first_run, save_secrets
    from gateway.services import SERVICES

    await runner.setup()
    site = http_site(runner, settings.http_host, settings.http_port)
    try:
        await site.start()
    except OSError as exc:
        raise ConfigError(
            f"MSGGATE_HTTP_PORT={settings.http_port}: cannot listen: {exc.strerror or exc}"
        ) from None
    services = runner.app[SERVICES]
    created = await first_run(services)
    secrets_file = None
    try:
        secrets_file = save_secrets(settings.data_path, created)
    except OSError as exc:
        log.error("cannot write the first run's credentials to %s: %s", settings.data_path, exc)
    # A service's standard output goes to logs others read: secrets only to a person.
    print(banner(services, created, secrets_file, sys.stdout.isatty()), flush=True)


# -- apikey -----------------------------------------------------------------------------------


async def _apikey(settings: Settings, args: argparse.Namespace) -> None:
    from gateway.runtime import open_services

    async with open_services(settings, dispatch=False) as services:
        if args.apikey_command == "create":
            record, key = await services.api_keys.create(args.name)
            print(f"created API key {record.name!r}; it is shown only now:")
            print(key)
        elif args.apikey_command == "list":
            for k in await services.api_keys.list():
                state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
                print(f"{k.name}\t{k.prefix}…\t{k.created_at:%Y-%m-%d %H:%M}\t{state}")
        elif args.apikey_command == "revoke":
            await services.api_keys.revoke(args.name)
            print(f"revoked API key {args.name!r}")


# -- user (console users) ---------------------------------------------------------------------


def _read_password(args: argparse.Namespace) -> str:
    """From standard input (``--password-stdin``: its first line) or asked twice at a terminal."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    if not sys.stdin.isatty():
        raise ConfigError("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ")
    return first


async def _user(settings: Settings, args: argparse.Namespace) -> None:
    from gateway.console_store import ConsoleStore
    from gateway.console_users import ConsoleUserIn, ConsoleUsers
    from gateway.runtime import open_services

    password = _read_password(args) if args.user_command in ("add", "passwd") else ""
    async with open_services(settings, dispatch=False) as services:
        users = ConsoleUsers(ConsoleStore(services.store.pool))
        if args.user_command == "add":
            body = ConsoleUserIn(
                name=args.name,
                password=password,
                role=args.role,
                language=args.language,
                time_zone=args.time_zone,
            )
            user = await users.create(body)
            print(f"created console user {user.name!r} ({user.role}); log in at /admin")
        elif args.user_command == "list":
            for u in await users.list():
                last = f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "never"
                print(f"{u.name}\t{u.role}\t{u.language}\t{u.time_zone}\tlast login {last}")
        elif args.user_command == "passwd":
            found = [u for u in await users.list() if u.name == args.name]
            if not found:
                raise ConfigError(f"no console user named {args.name!r}")
            await users.set_password(found[0].id, password)
            print(f"password of {args.name!r} changed; their sessions have ended")


# -- plugins ----------------------------------------------------------------------------------


def _plugins() -> int:
    from gateway.plugins import Plugins

    plugins = Plugins.load()
    for info in plugins.describe():
        where = f"{info.distribution} {info.version}" if info.distribution else "(local)"
        print(f"{info.name}\t{where}\tchannels: {', '.join(info.channels) or '-'}")
    for problem in plugins.problems:
        print(f"{problem.plugin}\tDISABLED\t{problem.reason}")
    return 1 if plugins.problems else 0


# -- send -------------------------------------------------------------------------------------


def _send(args: argparse.Namespace) -> int:
    key = args.api_key or os.environ.get("MSGGATE_API_KEY")
    if not key:
        raise ConfigError("--api-key (or MSGGATE_API_KEY) is required")
    body: dict[str, Any] = {"channel": args.channel, "account": args.account, "recipients": args.to}
    for field in ("subject", "text", "html", "send_at", "idempotency_key"):
        value = getattr(args, field)
        if value is not None:
            body[field] = value
    if args.html_file:
        with open(args.html_file, encoding="utf-8") as f:
            body["html"] = f.read()
    if args.var:
        body["variables"] = dict(v.split("=", 1) for v in args.var)
    request = urllib.request.Request(
        args.url.rstrip("/") + "/api/v1/messages",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(), file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        raise ConfigError(f"--url {args.url}: cannot reach the gateway: {exc.reason}") from None


# -- fake-providers ----------------------------------------------------------------------------


async def _fake_providers(host: str, port: int) -> None:
    from aiohttp import web

    from gateway.callbacks import fake_providers_app
    from gateway.plugins import Plugins

    fakes = Plugins.load().fake_providers()
    runner = web.AppRunner(fake_providers_app(fakes), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(f"--port {port}: cannot listen: {exc.strerror or exc}") from None
        print(f"fake providers on http://{host}:{port} (use these as each account's endpoint):")
        for fake in fakes:
            print(f"  {fake.name:<16} http://{host}:{port}/{fake.name}  {fake.description}")
        print(flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


# -- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msggate", description=gateway.__doc__)
    parser.add_argument("--version", action="version", version=f"msggate {gateway.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway (HTTP API, dispatcher)")
    _settings_flags(serve)

    apikey = sub.add_parser("apikey", help="manage API keys")
    apikey_sub = apikey.add_subparsers(dest="apikey_command", required=True)
    create = apikey_sub.add_parser("create", help="create a key; prints it on the last line")
    create.add_argument("--name", required=True)
    apikey_sub.add_parser("list", help="list keys (never the keys themselves)")
    revoke = apikey_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("--name", required=True)
    for p in (create, apikey_sub.choices["list"], revoke):
        _settings_flags(p)

    user = sub.add_parser("user", help="manage web console users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a console user (asks for the password)")
    add.add_argument("--name", required=True)
    add.add_argument("--role", choices=("admin", "operator", "readonly"), default="operator")
    add.add_argument("--language", choices=("zh-CN", "en"), default="zh-CN")
    add.add_argument("--time-zone", dest="time_zone", default="Asia/Shanghai")
    passwd = user_sub.add_parser("passwd", help="set a console user's password")
    passwd.add_argument("--name", required=True)
    for p in (add, passwd):
        p.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of standard input",
        )
    user_sub.add_parser("list", help="list console users")
    for p in (add, passwd, user_sub.choices["list"]):
        _settings_flags(p)

    send = sub.add_parser("send", help="send a message through a running gateway")
    send.add_argument("--url", default="http://127.0.0.1:8080")
    send.add_argument("--api-key", help="or MSGGATE_API_KEY")
    send.add_argument("--channel", default="email")
    send.add_argument("--account", required=True)
    send.add_argument("--to", action="append", required=True, help="a recipient (repeatable)")
    send.add_argument("--subject")
    send.add_argument("--text")
    send.add_argument("--html")
    send.add_argument("--html-file")
    send.add_argument("--var", action="append", help="NAME=VALUE template variable")
    send.add_argument("--send-at", dest="send_at", help="ISO 8601 time with zone")
    send.add_argument("--idempotency-key", dest="idempotency_key")

    sub.add_parser("plugins", help="list loaded plugins and their channels")
    fakes = sub.add_parser("fake-providers", help="serve local fakes of every provider")
    fakes.add_argument("--host", default="127.0.0.1")
    fakes.add_argument("--port", type=int, default=9400)
    migrate = sub.add_parser("migrate", help="apply database migrations and exit")
    _settings_flags(migrate)
    sub.add_parser("secret-key", help="print a new key for MSGGATE_SECRET_KEY")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "plugins":
            logging.basicConfig(level="CRITICAL")
            return _plugins()
        if args.command == "send":
            return _send(args)
        if args.command == "fake-providers":
            logging.basicConfig(
                level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s"
            )
            _event_loop_policy()
            asyncio.run(_fake_providers(args.host, args.port))
            return 0
        if args.command == "secret-key":
            from gateway.crypto import new_key

            print(new_key())
            return 0
        settings = _settings(args)
        _setup_logging(settings.log_level)
        _event_loop_policy()
        if args.command == "serve":
            from gateway import malloc

            malloc.tune()  # before any thread: a server's memory goes back after bursts
            asyncio.run(_serve(settings))
        elif args.command == "apikey":
            asyncio.run(_apikey(settings, args))
        elif args.command == "user":
            asyncio.run(_user(settings, args))
        elif args.command == "migrate":
            from gateway.runtime import open_services

            async def _migrate() -> None:
                async with open_services(settings, dispatch=False):
                    print("database is up to date")

            asyncio.run(_migrate())
        return 0
    except ConfigError as exc:
        print(f"msggate: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from gateway.errors import GatewayError

        if isinstance(exc, GatewayError):
            print(f"msggate: {exc.message}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
