"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation.

The key comes from ``MSGGATE_SECRET_KEY`` (comma-separated keys: the first encrypts, all
decrypt) or, when unset, from ``secret.key`` in the data folder, generated on first run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from gateway.config import ConfigError

log = logging.getLogger(__name__)

KEY_FILE = "secret.key"


class SecretBox:
    """Encrypts and decrypts small JSON objects of secrets."""

    def __init__(self, keys: list[str]) -> None:
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except (ValueError, TypeError):
            raise ConfigError(
                "MSGGATE_SECRET_KEY is not valid: expected Fernet keys (32 url-safe base64 bytes),"
                " e.g. from `msggate secret-key`"
            ) from None

    def seal(self, secrets: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(json.dumps(secrets).encode())

    def open(self, token: bytes) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(bytes(token)))
        except InvalidToken:
            raise ConfigError(
                "MSGGATE_SECRET_KEY cannot decrypt stored secrets: the key was changed"
                " without keeping the old one in the list"
            ) from None


def new_key() -> str:
    return Fernet.generate_key().decode()


def load_secret_box(secret_key: str | None, data_dir: Path) -> SecretBox:
    """The box for ``secret_key``, or for the key file in ``data_dir`` (created if missing)."""
    if secret_key:
        return SecretBox(secret_key.split(","))
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_key() + "\n")
        log.info("generated a new secret key in %s", path)
    return SecretBox(path.read_text().split(","))
