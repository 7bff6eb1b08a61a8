"""Ids: uuid7 is built by hand (no UUID.__init__), so check it is a real RFC 9562 version 7."""

from __future__ import annotations

import time
import uuid

from gateway.model import _RandomPool, uuid7


def test_uuid7_is_a_valid_version_7_uuid_equal_to_its_parsed_text():
    ids = [uuid7() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for u in ids[:50]:
        assert u.version == 7
        assert u.variant == uuid.RFC_4122
        parsed = uuid.UUID(str(u))
        assert parsed == u and hash(parsed) == hash(u)
        assert uuid.UUID(bytes=u.bytes) == u


def test_uuid7_carries_the_time_and_sorts_by_it():
    before = time.time_ns() // 1_000_000
    first = uuid7()
    time.sleep(0.002)
    second = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= first.int >> 80 <= after
    assert first < second  # a later millisecond sorts later (new rows go to the index's end)


def test_random_pool_refills_and_never_repeats_a_slice():
    pool = _RandomPool(page=25)
    parts = [pool.take(10) for _ in range(30)]
    assert all(len(p) == 10 for p in parts)
    assert len(set(parts)) == len(parts)
