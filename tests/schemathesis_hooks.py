"""schemathesis hooks for tests/test_api_fuzz.py (loaded through ``SCHEMATHESIS_HOOKS``).

The run must not lock itself out or delete what it relies on: the access rule that lets
127.0.0.1 in (``MSGGATE_FUZZ_KEEP_RULE``, its id) and the sandbox account messages are sent
through (``MSGGATE_FUZZ_ACCOUNT``) are never deleted. Half of the message bodies whose
channel, account and recipients are well formed go to that account, so fuzzed subjects,
texts, variables and keys reach the database instead of stopping at "no account named ...".
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

KEEP_RULE = os.environ.get("MSGGATE_FUZZ_KEEP_RULE", "")
ACCOUNT = os.environ.get("MSGGATE_FUZZ_ACCOUNT", "")
RECIPIENT = "fuzz@example.com"


def _operation(context: Any) -> tuple[str, str]:
    operation = context.operation
    return (operation.method.upper(), operation.path) if operation is not None else ("", "")


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    """Never the DELETE of the kept rule or account (a case hook: every phase runs it)."""
    if case.method.upper() != "DELETE" or not case.path_parameters:
        return True
    if case.path == "/api/v1/access-rules/{id}":
        return str(case.path_parameters.get("id")) != KEEP_RULE
    if case.path == "/api/v1/accounts/{name}":
        return case.path_parameters.get("name") != ACCOUNT
    return True


def _sized(value: Any, low: int, high: int) -> bool:
    return isinstance(value, str) and low <= len(value) <= high


def _well_addressed(body: Any) -> bool:
    """Channel, account and recipients valid as the schema says: a negative case stays
    negative when they are replaced, since what makes it so lies elsewhere."""
    if not isinstance(body, dict):
        return False
    recipients = body.get("recipients")
    return (
        _sized(body.get("channel"), 1, 64)
        and _sized(body.get("account"), 1, 200)
        and isinstance(recipients, list)
        and 1 <= len(recipients) <= 1000
        and all(_sized(r, 1, 320) for r in recipients)
    )


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> Any:
    if _operation(context) != ("POST", "/api/v1/messages") or not _well_addressed(body):
        return st.just(body)
    routed = {**body, "channel": "email", "account": ACCOUNT, "recipients": [RECIPIENT]}
    return st.sampled_from([body, routed])
