"""schemathesis against a running gateway's own OpenAPI document: every operation, more than a
thousand generated cases (examples, boundary coverage, fuzzing, stateful sequences), no server
error and no answer the document does not describe.

It takes 75-120 s on two busy cores. The seed is fixed when ``CI=true`` and random otherwise;
it is printed, and ``MSGGATE_FUZZ_SEED`` replays one. The run authenticates with an API key;
before it starts the access list gets a rule for 127.0.0.0/8, so the rules it creates cannot
lock it out, and the hooks (``tests/schemathesis_hooks.py``) keep it from deleting that rule
or the sandbox account half of its messages go to. The gateway runs only the e-mail channel:
fuzzed account configs must never make a channel call a real provider.

Checks left out: ``positive_data_acceptance`` (a well-formed message to an account that does
not exist is rightly 422; the schema cannot know the accounts) and the authorization checks
that need a second user.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from pathlib import Path

import pytest

import gateway.relay.routing
import plugins.email.plugin
from gateway.plugins import Plugins
from tests.gateway_fixtures import unique

CI_SEED = 20261203
# about 1,500 cases over the 16 operations; MSGGATE_FUZZ_EXAMPLES=200 digs deeper by hand
EXAMPLES_PER_OPERATION = int(os.environ.get("MSGGATE_FUZZ_EXAMPLES") or 60)
MIN_CASES = 1000
RUN_SECONDS = 600 * max(1, EXAMPLES_PER_OPERATION // 60)  # generous: a loaded machine
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
)


def fuzz_seed() -> int:
    if os.environ.get("MSGGATE_FUZZ_SEED"):
        return int(os.environ["MSGGATE_FUZZ_SEED"])
    return CI_SEED if os.environ.get("CI") == "true" else random.randrange(2**31)


@pytest.mark.timeout(RUN_SECONDS + 60)
async def test_schemathesis_finds_no_server_error_and_no_answer_off_the_schema(
    make_gateway, db, tmp_path, capsys
):
    only_email = Plugins.load(
        extra=[("email", plugins.email.plugin), ("relay_routing", gateway.relay.routing)],
        entry_points=False,
    )
    # its requests without a key all come from 127.0.0.1: the per-address budget of refusals
    # (429 past it) would answer them instead of the 401 the document promises
    gw = await make_gateway(plugins=only_email, http_max_failures_per_address=1_000_000)
    before = [r["id"] for r in await db.fetch("SELECT id FROM access_rules")]
    try:
        await _fuzz(gw, tmp_path, capsys)
    finally:
        # the test database is the whole run's: other tests expect the access list as it was
        await db.execute("DELETE FROM access_rules WHERE NOT (id = ANY($1))", before)


async def _fuzz(gw, tmp_path, capsys) -> None:
    status, rule = await gw.post(
        "/api/v1/access-rules", {"name": "fuzz: this machine", "cidr": "127.0.0.0/8"}
    )
    assert status == 201, rule
    account = unique("fuzz")
    await gw.create_account("email", account, sandbox=True)
    seed = fuzz_seed()
    with capsys.disabled():
        print(f"\nschemathesis seed {seed} (replay: MSGGATE_FUZZ_SEED={seed})")
    report = tmp_path / "report.json"
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{gw.url}/api/openapi.json",
        "--header",
        f"Authorization: Bearer {gw.api_key}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        "MSGGATE_FUZZ_KEEP_RULE": str(rule["id"]),
        "MSGGATE_FUZZ_ACCOUNT": account,
        "NO_COLOR": "1",
    }
    # a subprocess, so this event loop goes on serving the gateway it fuzzes
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=tmp_path,  # its .schemathesis cache stays out of the checkout
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"schemathesis (seed {seed}) ran longer than {RUN_SECONDS} s")
    text = output.decode(errors="replace")
    tail = "\n".join(text.splitlines()[-150:])
    assert report.exists(), f"no report (seed {seed}):\n{tail}"
    result = json.loads(report.read_text())
    cases = result["test_cases"]
    assert process.returncode == 0 and not result["failures"] and not result["errors"], (
        f"schemathesis found problems (seed {seed}):\n{tail}"
    )
    assert cases["generated"] >= MIN_CASES, f"only {cases} (seed {seed})"
    assert result["operations"]["tested"] == result["operations"]["total"], result["operations"]
    # it did not lock itself out, and what it relied on is still there
    assert (await gw.get("/api/v1/access-rules"))[0] == 200
    assert (await gw.get(f"/api/v1/accounts/{account}"))[0] == 200
