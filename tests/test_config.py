"""Settings and secrets: bad values are one clear line naming the setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.config import ConfigError, load_settings
from gateway.crypto import SecretBox, load_secret_box, new_key


def test_defaults_match_the_documented_interface():
    s = load_settings(environ={})
    assert (s.http_port, s.smtp_port, s.database_url, s.redis_url) == (8080, 2525, None, None)


def test_environment_and_flags_are_read_and_flags_win():
    env = {
        "MSGGATE_HTTP_PORT": "9000",
        "MSGGATE_DATABASE_URL": "postgresql://x@h/db",
        "MSGGATE_SMTP_PORT": "2626",
    }
    s = load_settings({"http_port": "9100"}, environ=env)
    assert (s.http_port, s.smtp_port, s.database_url) == (9100, 2626, "postgresql://x@h/db")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MSGGATE_HTTP_PORT": "eighty"}, "MSGGATE_HTTP_PORT"),
        ({"MSGGATE_HTTP_PORT": "70000"}, "MSGGATE_HTTP_PORT"),
        ({"MSGGATE_DATABASE_URL": "mysql://root@h/db"}, "MSGGATE_DATABASE_URL"),
        ({"MSGGATE_REDIS_URL": "http://h"}, "MSGGATE_REDIS_URL"),
        ({"MSGGATE_MAX_ATTEMPTS": "0"}, "MSGGATE_MAX_ATTEMPTS"),
        ({"MSGGATE_LOG_LEVEL": "LOUD"}, "MSGGATE_LOG_LEVEL"),
    ],
)
def test_bad_setting_is_named(env, named):
    with pytest.raises(ConfigError, match=named):
        load_settings(environ=env)


def test_database_url_is_not_echoed_in_errors():
    with pytest.raises(ConfigError) as info:
        load_settings(environ={"MSGGATE_DATABASE_URL": "mysql://root:hunter2@h/db"})
    assert "hunter2" not in str(info.value)


def test_serve_with_bad_setting_exits_with_one_line(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--http-port",
            "nope",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "msggate: --http-port='nope' is not valid: expected a port number 0-65535"
    ]


def test_serve_with_unreachable_database_says_so(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--database-url",
            "postgresql://nobody@127.0.0.1:1/none",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    [line] = [ln for ln in result.stderr.splitlines() if ln.startswith("msggate:")]
    assert line.startswith("msggate: MSGGATE_DATABASE_URL: cannot connect to the database")
    assert "Traceback" not in result.stderr


def test_secrets_round_trip_and_rotate():
    old, new = new_key(), new_key()
    sealed = SecretBox([old]).seal({"password": "授权码-123"})
    assert b"123" not in sealed
    rotated = SecretBox([new, old])
    assert rotated.open(sealed) == {"password": "授权码-123"}
    with pytest.raises(ConfigError, match="cannot decrypt"):
        SecretBox([new]).open(sealed)


def test_secret_key_is_generated_once_in_the_data_dir(tmp_path):
    box = load_secret_box(None, tmp_path)
    key_file = tmp_path / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    again = load_secret_box(None, tmp_path)
    assert again.open(box.seal({"a": 1})) == {"a": 1}


def test_bad_secret_key_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="MSGGATE_SECRET_KEY"):
        load_secret_box("not-a-key", tmp_path)
