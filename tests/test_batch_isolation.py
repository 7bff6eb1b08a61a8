"""One bad item cannot fail its group-commit neighbours, slow them down, or log a traceback.

The items here bypass the edge validation on purpose (they go straight to the batcher), as a
message with text PostgreSQL cannot store would if some edge let it through.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence

import aiosmtplib
import pytest

from gateway.batching import Batcher
from gateway.errors import GatewayError, Unstorable
from gateway.model import NewMessage, uuid7
from gateway.store import InsertResult, item_error
from tests.gateway_fixtures import unique
from tests.relay_support import start_relay

# -- the batcher alone (its flush is a plain function) --------------------------------------


async def test_one_bad_item_is_found_by_halving_the_batch_not_by_retrying_each():
    flushed: list[list[int]] = []

    async def flush(items: Sequence[int]) -> list[int]:
        flushed.append(list(items))
        if 13 in items:
            raise Unstorable("13 cannot be stored")
        return [i * 10 for i in items]

    batcher: Batcher[int, int] = Batcher(flush, 64)
    try:
        results = await asyncio.gather(
            *(batcher.submit(i) for i in range(64)), return_exceptions=True
        )
    finally:
        await batcher.close()
    assert len(flushed[0]) == 64  # all in one batch: the case this test is about
    assert isinstance(results[13], Unstorable)
    assert [r for i, r in enumerate(results) if i != 13] == [i * 10 for i in range(64) if i != 13]
    # halving: the failing half at each of log2(64) levels, and its sibling
    assert len(flushed) <= 1 + 2 * math.ceil(math.log2(64)), len(flushed)


async def test_a_database_outage_fails_the_batch_once_instead_of_once_per_item():
    calls = 0

    async def flush(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        raise ConnectionResetError("the database went away")

    batcher: Batcher[int, int] = Batcher(flush, 50, splittable=item_error)
    try:
        results = await asyncio.gather(
            *(batcher.submit(i) for i in range(50)), return_exceptions=True
        )
    finally:
        await batcher.close()
    assert all(isinstance(r, ConnectionResetError) for r in results)
    assert calls == 1


async def test_by_default_a_hung_database_is_not_waited_for_once_per_piece():
    calls = 0

    async def flush(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        raise TimeoutError  # the statement timed out: its pieces would each time out too

    batcher: Batcher[int, int] = Batcher(flush, 50)
    try:
        results = await asyncio.gather(
            *(batcher.submit(i) for i in range(50)), return_exceptions=True
        )
    finally:
        await batcher.close()
    assert all(isinstance(r, TimeoutError) for r in results)
    assert calls == 1


async def test_an_item_whose_caller_gave_up_before_its_flush_is_not_flushed():
    flushed: list[str] = []
    first_started, release = asyncio.Event(), asyncio.Event()

    async def flush(items: Sequence[str]) -> list[str]:
        flushed.extend(items)
        first_started.set()
        await release.wait()
        return list(items)

    batcher: Batcher[str, str] = Batcher(flush, 10, flushers=1)
    try:
        first = asyncio.create_task(batcher.submit("first"))
        await first_started.wait()  # the one flusher is busy: the next item waits in the queue
        abandoned = asyncio.create_task(batcher.submit("abandoned"))
        await asyncio.sleep(0)  # queued
        abandoned.cancel()  # its caller's deadline passed: it was told to try again
        later = asyncio.create_task(batcher.submit("later"))
        await asyncio.sleep(0)
        release.set()
        assert await first == "first" and await later == "later"
    finally:
        await batcher.close()
    assert flushed == ["first", "later"]


# -- the real group commit on PostgreSQL ----------------------------------------------------


def message(account_id: int = 1, **fields) -> NewMessage:
    values = dict(
        id=uuid7(),
        channel="email",
        account_id=account_id,
        account_name="batch-test",
        recipients=["a@example.com"],
        delivery_ids=[uuid7()],
        subject=unique("batch"),
        text="hello",
        html=None,
        variables={},
        ingress="http",
        ingress_detail={},
        idempotency_scope=None,
        idempotency_key=None,
        request_hash=None,
        send_at=None,
    )
    values.update(fields)
    return NewMessage(**values)


async def committed(db, messages: list[NewMessage]) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM messages WHERE id = ANY($1::uuid[])", [m.id for m in messages]
    )


async def test_unstorable_text_fails_only_its_own_message_naming_the_field(
    make_gateway, db, caplog
):
    gw = await make_gateway(dispatch=False)
    service = gw.services.messages
    bad = {
        "text": message(text="before\x00after"),
        "subject": message(subject="a\x00"),
        "variables.name.first": message(variables={"name": {"first": "x\x00"}}),
        "variables": message(variables={"k\x00": 1}),
        "recipients[0]": message(recipients=["a\x00@example.com"]),
        "idempotency_key": message(idempotency_scope="s", idempotency_key="k\x00"),
        "html": message(html="\ud800 lone surrogate"),
    }
    good = [message() for _ in range(20)]
    batch = good[:10] + list(bad.values()) + good[10:]
    caplog.set_level(logging.INFO)
    results = await asyncio.gather(
        *(service._batcher.submit(m) for m in batch), return_exceptions=True
    )
    outcome = dict(zip((m.id for m in batch), results, strict=True))
    for field, m in bad.items():
        error = outcome[m.id]
        assert isinstance(error, GatewayError) and error.status == 422, (field, error)
        assert error.field == field and "\x00" not in error.message, error.message
    for m in good:
        assert isinstance(outcome[m.id], InsertResult) and m.id not in outcome[m.id].skipped
    assert await committed(db, good) == len(good)
    assert await committed(db, list(bad.values())) == 0
    assert not [r for r in caplog.records if r.exc_info], "a client's bad data is no traceback"


async def test_a_value_the_database_refuses_is_isolated_in_log_n_statements(
    make_gateway, db, caplog
):
    gw = await make_gateway(dispatch=False)
    service = gw.services.messages
    good = [message() for _ in range(64)]
    bad = message(account_id=2**70)  # past bigint: only PostgreSQL finds it (22003)
    batch = [*good[:40], bad, *good[40:]]
    caplog.set_level(logging.INFO)
    before = service._batcher.batches
    results = await asyncio.gather(
        *(service._batcher.submit(m) for m in batch), return_exceptions=True
    )
    flushes = service._batcher.batches - before
    error = results[40]
    assert isinstance(error, GatewayError) and error.status == 422, error
    assert all(isinstance(r, InsertResult) for i, r in enumerate(results) if i != 40)
    assert await committed(db, good) == len(good)
    assert flushes <= 1 + 2 * math.ceil(math.log2(len(batch))), flushes
    lines = [r for r in caplog.records if r.name == "gateway.batching"]
    assert len(lines) == 1, "one line for the batch, not one per item"
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_steady_stream_of_bad_items_never_makes_good_items_flush_twice(make_gateway, db):
    gw = await make_gateway(dispatch=False)
    service = gw.services.messages
    submitted: list[NewMessage] = []
    good_done = asyncio.Event()

    async def good_client() -> None:
        for _ in range(25):
            m = message()
            submitted.append(m)
            assert isinstance(await service._batcher.submit(m), InsertResult)

    async def bad_client() -> None:
        while not good_done.is_set():
            m = message(text="\x00" + unique("bad"))
            submitted.append(m)
            with pytest.raises(Unstorable):
                await service._batcher.submit(m)

    before = service._batcher.items
    bad_clients = [asyncio.create_task(bad_client()) for _ in range(4)]
    try:
        await asyncio.wait_for(asyncio.gather(*(good_client() for _ in range(8))), 60)
    finally:
        good_done.set()
        await asyncio.gather(*bad_clients)
    good = [m for m in submitted if m.text == "hello"]
    assert len(good) == 200 and await committed(db, good) == 200
    assert len(submitted) > len(good)  # bad items were mixed in
    # every item went through exactly one flush: nothing retried, nobody waited for a retry
    assert service._batcher.items - before == len(submitted)


async def test_the_api_answers_422_not_500_for_text_the_database_cannot_store(gateway, caplog):
    account = unique("sb")
    await gateway.post("/api/v1/accounts", {"channel": "email", "name": account, "sandbox": True})
    caplog.set_level(logging.INFO)
    status, body = await gateway.post(
        "/api/v1/messages",
        {"channel": "email", "account": account, "recipients": ["a@example.com"], "text": "a\x00"},
    )
    assert status == 422, body
    assert body["error"]["field"] == "text"
    assert not [r for r in caplog.records if r.exc_info]


async def test_the_relay_refuses_text_the_database_cannot_store_with_5xx_not_451(
    make_gateway, tmp_path, caplog
):
    relay = await start_relay(make_gateway, tmp_path, dispatch=False)
    user = await relay.user()
    caplog.set_level(logging.INFO)
    mail = (
        "From: app@example.com\r\nTo: ops@example.com\r\nSubject: before\x00after\r\n"
        f"Message-ID: <{unique('m')}@example.com>\r\n\r\nbody\r\n"
    )
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await relay.send(mail, ["ops@example.com"], user=user)
    assert refused.value.code // 100 == 5, refused.value  # a 4xx: retried forever
    assert not [r for r in caplog.records if r.exc_info]
