"""A message read through the API is one snapshot: each delivery's status agrees with its
events, even while the dispatcher writes both between the reads."""

from __future__ import annotations

import asyncio
import json
import uuid


async def test_a_message_is_read_in_one_snapshot(make_gateway, db):
    gw = await make_gateway(dispatch=False)
    await gw.create_account("email", "snapshot", sandbox=True)
    accepted = await gw.send(
        channel="email", account="snapshot", recipients=["a@example.com"], subject="s", text="t"
    )
    [delivery_id] = await db.fetchval(
        "SELECT array_agg(id) FROM deliveries WHERE message_id = $1::uuid", accepted["id"]
    )
    writing = True

    async def write() -> None:  # what finish_deliveries does: status and event in one statement
        attempt = 0
        while writing:
            attempt += 1
            await db.execute(
                """WITH u AS (UPDATE deliveries SET attempts = $2 WHERE id = $1 RETURNING id)
                   INSERT INTO delivery_events (delivery_id, kind, detail)
                   SELECT id, 'attempt', $3::jsonb FROM u""",
                delivery_id,
                attempt,
                json.dumps({"attempt": attempt}),
            )

    writer = asyncio.create_task(write())
    try:
        for _ in range(300):
            message = await gw.services.store.message(uuid.UUID(accepted["id"]))
            assert message is not None
            _, [delivery], events = message
            attempts = [e.detail["attempt"] for e in events if e.kind == "attempt"]
            assert delivery.attempts == (attempts[-1] if attempts else 0), (
                f"delivery says attempt {delivery.attempts}, its events end at {attempts[-1:]}"
            )
    finally:
        writing = False
        await writer
