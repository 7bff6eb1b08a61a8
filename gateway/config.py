"""Settings: one place that reads environment variables and ``msggate serve`` flags.

Every setting has an environment variable ``MSGGATE_<NAME>`` and a flag ``--<name>``; a flag wins.
Bad values raise :class:`ConfigError` naming the setting, which the CLI prints as one line.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec


class ConfigError(Exception):
    """A setting has a bad value; the message names it."""


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Everything ``msggate serve`` can be told. Defaults suit a first run on one machine."""

    http_host: str = "0.0.0.0"
    http_port: int = 8080
    smtp_port: int = 2525
    # SMTP relay (gateway/relay)
    smtp_host: str = "0.0.0.0"
    smtp_hostname: str | None = None  # EHLO/Received name; default: this machine's FQDN
    smtp_tls_cert: str | None = None  # PEM files; unset = self-signed, generated in data_dir
    smtp_tls_key: str | None = None
    smtp_allow_plain_auth: bool = False  # AUTH without STARTTLS (trusted networks only)
    smtp_max_message_size: int = 25 * 1024 * 1024
    smtp_max_recipients: int = 100
    smtp_max_connections: int = 500  # clamped below the open-file limit (gateway/relay/limits)
    smtp_max_connections_per_address: int = 20  # access-list addresses are not limited
    smtp_max_commands: int = 5000  # per session: ~1000 messages (Exim closes after 1000)
    smtp_command_timeout: float = 300.0
    smtp_session_timeout: float = 600.0  # without a message: NOOPs do not extend it
    smtp_data_timeout: float = 600.0
    relay_domain: str | None = None
    relay_default_account: str | None = None
    relay_bounces: bool = True
    trusted_proxies: str | None = None  # CIDRs whose X-Forwarded-For the HTTP API believes
    # password guessing, console login and SMTP AUTH alike (gateway/throttle.py)
    auth_window_seconds: float = 900.0
    auth_failures_per_user_address: int = 5
    auth_failures_per_address: int = 30
    auth_failures_per_user: int = 30
    # HTTP connections and callers without a valid API key (gateway/api/connections, limits)
    http_max_connections: int = 1000
    http_max_connections_per_address: int = 100
    http_header_timeout: float = 10.0  # a new connection's first request, headers complete
    http_keepalive_timeout: float = 75.0  # an idle kept-alive connection; the next headers
    http_max_unauthenticated_per_address: int = 16  # requests at once
    http_max_failures_per_address: int = 30  # 401/403 answers per window, then 429
    http_failure_window: float = 60.0
    config: str | None = None  # TOML file (the relay's routing table)
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: str = "msggate-data"
    secret_key: str | None = None
    log_level: str = "INFO"
    # dispatcher
    dispatch_batch: int = 200
    dispatch_concurrency: int = 64
    lease_seconds: float = 60.0
    poll_seconds: float = 5.0
    max_attempts: int = 8
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 3600.0
    # accept path
    accept_batch: int = 500
    accept_timeout_seconds: float = 5.0  # then 503 / 451: a hung database must not hang clients
    http_max_body_size: int = 8 * 1024 * 1024  # bytes of an API request body (413 above)
    body_memory: int = 32 * 1024 * 1024  # bytes of large bodies (HTTP and SMTP) handled at once
    body_wait_seconds: float = 30.0  # how long a large body waits for memory: then 503 / 451
    db_pool_size: int = 10
    db_timeout_seconds: float = 30.0  # any database call: connect, pool wait, statement
    node_name: str | None = None

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()


# name -> (parser, check, explanation of a valid value)
_PORT = (int, lambda v: 0 <= v <= 65535, "a port number 0-65535")
_POSITIVE_INT = (int, lambda v: v > 0, "a whole number above 0")
_POSITIVE_FLOAT = (float, lambda v: v > 0, "a number above 0")
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR"}


def _db_url(value: str) -> bool:
    return urlsplit(value).scheme in {"postgres", "postgresql"}


def _redis_url(value: str) -> bool:
    return urlsplit(value).scheme in {"redis", "rediss", "unix"}


def _bool(value: Any) -> bool:
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(value)


def _cidrs(value: str) -> bool:
    try:
        for part in value.split(","):
            ipaddress.ip_network(part.strip(), strict=False)
    except ValueError:
        return False
    return True


_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$)({_LABEL}\.)*{_LABEL}$")
_FILE = (str, os.path.isfile, "the path of an existing file")
_BOOL = (_bool, lambda v: True, "true or false")


_RULES: dict[str, tuple[Any, Any, str]] = {
    "http_port": _PORT,
    "smtp_port": _PORT,
    "database_url": (str, _db_url, "a postgresql:// URL"),
    "redis_url": (str, _redis_url, "a redis:// URL"),
    "log_level": (str.upper, lambda v: v in _LEVELS, "one of " + ", ".join(sorted(_LEVELS))),
    "dispatch_batch": _POSITIVE_INT,
    "dispatch_concurrency": _POSITIVE_INT,
    "lease_seconds": _POSITIVE_FLOAT,
    "poll_seconds": _POSITIVE_FLOAT,
    "max_attempts": _POSITIVE_INT,
    "retry_base_seconds": _POSITIVE_FLOAT,
    "retry_max_seconds": _POSITIVE_FLOAT,
    "accept_batch": _POSITIVE_INT,
    "accept_timeout_seconds": _POSITIVE_FLOAT,
    "db_timeout_seconds": _POSITIVE_FLOAT,
    "http_max_body_size": (int, lambda v: 1024 <= v <= 2**30, "bytes, 1024-1073741824"),
    "body_memory": (int, lambda v: v >= 1024 * 1024, "bytes, at least 1048576"),
    "body_wait_seconds": _POSITIVE_FLOAT,
    "db_pool_size": (int, lambda v: v >= 2, "a whole number of at least 2"),
    "smtp_tls_cert": _FILE,
    "smtp_tls_key": _FILE,
    "smtp_allow_plain_auth": _BOOL,
    "smtp_max_message_size": (int, lambda v: 1024 <= v <= 2**30, "bytes, 1024-1073741824"),
    "smtp_max_recipients": (int, lambda v: 1 <= v <= 1000, "a whole number 1-1000"),
    "smtp_max_connections": _POSITIVE_INT,
    "smtp_max_connections_per_address": _POSITIVE_INT,
    "smtp_max_commands": _POSITIVE_INT,
    "smtp_command_timeout": _POSITIVE_FLOAT,
    "smtp_session_timeout": _POSITIVE_FLOAT,
    "smtp_data_timeout": _POSITIVE_FLOAT,
    "relay_domain": (str.lower, _DOMAIN.match, "a domain name such as relay.example.com"),
    "relay_bounces": _BOOL,
    "auth_window_seconds": _POSITIVE_FLOAT,
    "auth_failures_per_user_address": _POSITIVE_INT,
    "auth_failures_per_address": _POSITIVE_INT,
    "auth_failures_per_user": _POSITIVE_INT,
    "trusted_proxies": (str, _cidrs, "comma-separated IP addresses or CIDR ranges"),
    "http_max_connections": _POSITIVE_INT,
    "http_max_connections_per_address": _POSITIVE_INT,
    "http_header_timeout": _POSITIVE_FLOAT,
    "http_keepalive_timeout": _POSITIVE_FLOAT,
    "http_max_unauthenticated_per_address": _POSITIVE_INT,
    "http_max_failures_per_address": _POSITIVE_INT,
    "http_failure_window": _POSITIVE_FLOAT,
    "config": (str, os.path.isfile, "the path of an existing TOML file"),
}

SETTING_NAMES = tuple(Settings.__struct_fields__)


def env_name(setting: str) -> str:
    return "MSGGATE_" + setting.upper()


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from ``environ`` (default ``os.environ``) with ``overrides`` (flags) on top."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name in SETTING_NAMES:
        raw = environ.get(env_name(name))
        source = env_name(name)
        if overrides and overrides.get(name) is not None:
            raw, source = overrides[name], "--" + name.replace("_", "-")
        if raw is None or raw == "":
            continue
        parse, check, explain = _RULES.get(name, (str, lambda v: True, "text"))
        try:
            value = parse(raw)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}={raw!r} is not valid: expected {explain}") from None
        if not check(value):
            shown = "<hidden>" if "url" in name else repr(raw)
            raise ConfigError(f"{source}={shown} is not valid: expected {explain}")
        values[name] = value
    return Settings(**values)
