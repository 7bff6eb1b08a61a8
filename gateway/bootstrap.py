"""First run: an API key, a console administrator and a sandbox account, so a new user sees the
whole flow at once.

The key and the password are written to :data:`SECRETS_FILE` in the data folder, readable only
by its owner; the banner shows them only on an interactive terminal, because a service's
standard output ends up in logs that others read.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
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
SECRETS_FILE = "first-run.toml"


class FirstRun(msgspec.Struct):
    api_key: str | None = None
    sandbox_account: str | None = None
    console_user: str | None = None
    console_password: str | None = None  # shown once in the banner; must be changed at login

    def __repr__(self) -> str:  # never the key or the password
        return f"FirstRun(console_user={self.console_user!r})"

    @property
    def secrets(self) -> dict[str, str]:
        """The credentials created, by name (empty when this was not a first run)."""
        found = {
            "console_user": self.console_user if self.console_password else None,
            "console_password": self.console_password,
            "api_key": self.api_key,
        }
        return {name: value for name, value in found.items() if value}


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


def save_secrets(data_path: Path, created: FirstRun) -> Path | None:
    """Write the credentials ``created`` to ``data_path/first-run.toml`` with mode 0600 (the owner
    only); return its path, or None when nothing was created. An earlier file is replaced."""
    if not created.secrets:
        return None
    data_path.mkdir(parents=True, exist_ok=True)
    path = data_path / SECRETS_FILE
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    lines = [
        f"# msggate first run, {stamp}: the credentials it created, shown nowhere else.",
        "# The console password must be changed at first login. Delete this file once you have",
        "# kept the API key where it belongs.",
        *(f"{name} = {json.dumps(value)}" for name, value in created.secrets.items()),
    ]
    # Created with 0600 and renamed into place: never readable by others, even for a moment,
    # and never half written.
    partial = path.with_name(f".{SECRETS_FILE}.{os.getpid()}")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(partial, path)
    return path


def banner(
    services: Services,
    created: FirstRun,
    secrets_file: Path | None = None,
    show_secrets: bool = True,
) -> str:
    """What ``msggate serve`` prints once it runs. The first run's password and key appear only
    with ``show_secrets`` (an interactive terminal); otherwise the banner names
    ``secrets_file``, where they are."""
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
    hidden = f"(in {secrets_file})" if secrets_file else "(not shown: no terminal, no file)"
    if secrets_file is not None:
        lines.append(
            f"  secrets  : {secrets_file}   (this first run's console password and API key;"
            " readable only by this user)"
        )
    if created.console_user:
        password = created.console_password if show_secrets else hidden
        lines += [
            f"  login    : {created.console_user} / {password}",
            "             (console administrator created for this first run; the password must be",
            "              changed at first login; more console users:",
            "              msggate user add --name NAME --role admin|operator|readonly)",
        ]
    if created.api_key:
        lines += [
            f"  API key  : {created.api_key if show_secrets else hidden}",
            "             (created for this first run; more keys:",
            "              msggate apikey create --name NAME)",
        ]
    else:
        lines.append("  API key  : use yours, or create one: msggate apikey create --name NAME")
    if created.sandbox_account:
        key = created.api_key if created.api_key and show_secrets else "$MSGGATE_API_KEY"
        lines += [
            f'  try it   : curl -s {api}/api/v1/messages -H "Authorization: Bearer {key}" \\',
            '               -H \'Content-Type: application/json\' -d \'{"channel": "email",'
            f' "account": "{SANDBOX_ACCOUNT}", "recipients": ["you@example.com"],'
            ' "subject": "hello", "text": "it works"}\'',
            f"             then: curl -s {api}/api/v1/sandbox/messages"
            f' -H "Authorization: Bearer {key}"',  # double quotes: $MSGGATE_API_KEY expands
        ]
    return "\n".join(lines)
