"""Shared fixtures: real PostgreSQL, real SMTP servers, the gateway over real sockets."""

pytest_plugins = ["tests.db_fixtures", "tests.gateway_fixtures", "tests.smtp_fixtures"]
