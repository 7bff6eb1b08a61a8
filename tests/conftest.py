"""Shared fixtures: real PostgreSQL, real SMTP servers, the gateway over real sockets."""

pytest_plugins = ["tests.smtp_fixtures"]
