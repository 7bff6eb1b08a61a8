"""Settings: one place that reads environment variables and ``msggate serve`` flags.

Every setting has an environment variable ``MSGGATE_<NAME>`` and a flag ``--<name>``; a flag wins.
Bad values raise :class:`ConfigError` naming the setting, which the CLI prints as one line.
"""

from __future__ import annotations

import os
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
    db_pool_size: int = 10
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
    "db_pool_size": (int, lambda v: v >= 2, "a whole number of at least 2"),
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
