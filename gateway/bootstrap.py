"""First run: an API key, a console administrator and a sandbox account, so a new user sees the
whole flow at once."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import msgspec

import gateway
from gateway.console_store import ConsoleStore
from gateway.console_users import ConsoleUsers
from gateway.errors import Conflict
from gateway.services import Services

log = logging.getLogger(__name__)

FIRST_KEY_NAME = "first-run"
SANDBOX_ACCOUNT = "sandbox"


class FirstRun(msgspec.Struct):
    api_key: str | None = None
    sandbox_account: str | None = None
    console_user: str | None = None
    console_password: str | None = None  # shown once in the banner; must be changed at login

    def __repr__(self) -> str:  # never the key or the password
        return f"FirstRun(console_user={self.console_user!r})"


async def first_run(services: Services) -> FirstRun:
    """Create a key when none is active, and a sandbox e-mail account when there is no account."""
    created = FirstRun()
    if await services.store.count_api_keys() == 0:
        try:
            _, created.api_key = await services.api_keys.create(FIRST_KEY_NAME)
        except Conflict:  # an earlier first-run key exists but was revoked
            log.info("no active API key: create one with `msggate apikey create --name NAME`")
    first_user = await ConsoleUsers(ConsoleStore(services.store.pool)).first_user()
    if first_user is not None:
        created.console_user, created.console_password = first_user
    if "email" in services.plugins.channels and not await services.store.list_accounts(None, None):
        await services.accounts.create("email", SANDBOX_ACCOUNT, None, sandbox=True)
        created.sandbox_account = SANDBOX_ACCOUNT
    return created


def banner(services: Services, created: FirstRun) -> str:
    s = services.settings
    host = "127.0.0.1" if s.http_host in ("0.0.0.0", "::", "") else s.http_host
    api = f"http://{host}:{s.http_port}"
    if s.database_url:
        db = f"PostgreSQL at {urlsplit(s.database_url).hostname or 'local socket'}"
    else:
        db = f"embedded PostgreSQL in {s.data_path / 'pg'}"
    lines = [
        f"msggate {gateway.__version__} is running",
        f"  HTTP API : {api}/api/v1   (OpenAPI: {api}/api/openapi.json)",
        f"  database : {db}",
        f"  data     : {s.data_path}",
        f"  channels : {', '.join(sorted(services.plugins.channels)) or 'none'}",
    ]
    listener = services.relay.listener if services.relay is not None else None
    if listener is not None:
        smtp = "127.0.0.1" if s.smtp_host in ("0.0.0.0", "::", "") else s.smtp_host
        lines.insert(
            2,
            f"  SMTP     : {smtp}:{listener.port}   (relay with STARTTLS; relay users and"
            " access rules: /api/v1/relay-users, /api/v1/access-rules)",
        )
    lines.insert(2, f"  console  : {api}/admin/")
    for problem in services.plugins.problems:
        lines.append(f"  DISABLED : plugin {problem.plugin}: {problem.reason}")
    if created.console_user:
        lines += [
            f"  login    : {created.console_user} / {created.console_password}",
            "             (console administrator created for this first run; the password is shown",
            "              only now and must be changed at first login; more console users:",
            "              msggate user add --name NAME --role admin|operator|readonly)",
        ]
    if created.api_key:
        lines += [
            f"  API key  : {created.api_key}",
            "             (created for this first run and shown only now; more keys:",
            "              msggate apikey create --name NAME)",
        ]
    else:
        lines.append("  API key  : use yours, or create one: msggate apikey create --name NAME")
    if created.sandbox_account:
        key = created.api_key or "$MSGGATE_API_KEY"
        lines += [
            f"  try it   : curl -s {api}/api/v1/messages -H 'Authorization: Bearer {key}' \\",
            '               -H \'Content-Type: application/json\' -d \'{"channel": "email",'
            f' "account": "{SANDBOX_ACCOUNT}", "recipients": ["you@example.com"],'
            ' "subject": "hello", "text": "it works"}\'',
            f"             then: curl -s {api}/api/v1/sandbox/messages"
            f" -H 'Authorization: Bearer {key}'",
        ]
    return "\n".join(lines)
