"""Shared fixtures: real PostgreSQL, real SMTP servers, the gateway over real sockets, and the
fake providers of the WeCom, WeLink, outbound and DingTalk tests (registered here, so test modules
import only their helpers and constants)."""

pytest_plugins = [
    "tests.db_fixtures",
    "tests.gateway_fixtures",
    "tests.smtp_fixtures",
    "tests.wecom_fixtures",
    "tests.welink_fixtures",
    "tests.outbound_fixtures",
    "tests.dingtalk_support",
]
