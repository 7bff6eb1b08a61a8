"""DingTalk robot signing: the documented vector, the fake checks it as DingTalk does, and a
client with the wrong secret gets DingTalk's own signature error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import yarl

from gateway.channel import Failed, Sent
from gateway.testing import channel_fixture
from plugins.dingtalk.robot import DingTalkRobotChannel
from plugins.dingtalk.sign import check_robot_sign, robot_query, robot_sign
from tests.dingtalk_support import (
    ROBOT_SECRET,
    ROBOT_TOKEN,
    Fake,
    outgoing,
    robot_ref,
    running_fake,
)

# docs/providers.md §2.1 worked vector
VECTOR_SECRET = "SECtestsecret0123456789"
VECTOR_TS = 1_700_000_000_000
VECTOR_B64 = "zrLWzK97t62y5CpqN8Ok9UIdPvX+jL1PNoW8nKT5a9k="
VECTOR_ENCODED = "zrLWzK97t62y5CpqN8Ok9UIdPvX%2BjL1PNoW8nKT5a9k%3D"


@pytest.fixture
async def frozen_fake() -> AsyncIterator[Fake]:
    """A fake whose clock stands at the vector's timestamp, with the vector's robot."""
    async with running_fake(clock=lambda: VECTOR_TS / 1000) as fake:
        fake.state.add_robot("vector-robot", secret=VECTOR_SECRET)
        yield fake


channel = channel_fixture(DingTalkRobotChannel)


def test_signature_matches_the_documented_vector():
    assert robot_sign(VECTOR_SECRET, VECTOR_TS) == VECTOR_B64
    assert robot_sign(VECTOR_SECRET, str(VECTOR_TS)) == VECTOR_B64


def test_query_carries_token_timestamp_and_url_encoded_sign():
    query = robot_query("tok/en", VECTOR_SECRET, VECTOR_TS)
    assert query == f"access_token=tok%2Fen&timestamp={VECTOR_TS}&sign={VECTOR_ENCODED}"
    assert robot_query("tok", None) == "access_token=tok"


def test_check_takes_the_own_sign_within_one_hour_and_refuses_outside_it():
    sign = robot_sign(ROBOT_SECRET, VECTOR_TS)
    for now in (VECTOR_TS, VECTOR_TS + 3_600_000, VECTOR_TS - 3_600_000):
        assert check_robot_sign(ROBOT_SECRET, str(VECTOR_TS), sign, now) is None
    for now in (VECTOR_TS + 3_600_001, VECTOR_TS - 3_600_001):
        assert check_robot_sign(ROBOT_SECRET, str(VECTOR_TS), sign, now) == "invalid timestamp"
    assert check_robot_sign(ROBOT_SECRET, None, sign, VECTOR_TS) == "invalid timestamp"
    assert check_robot_sign(ROBOT_SECRET, "17e11", sign, VECTOR_TS) == "invalid timestamp"
    assert check_robot_sign("SECother", str(VECTOR_TS), sign, VECTOR_TS) == "sign not match"
    assert check_robot_sign(ROBOT_SECRET, str(VECTOR_TS), None, VECTOR_TS) == "sign not match"


async def _post(url: str, query: str) -> dict:
    body = b'{"msgtype":"text","text":{"content":"vector"}}'
    headers = {"Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            yarl.URL(f"{url}/robot/send?{query}", encoded=True),
            data=body,
            headers=headers,
        ) as response,
    ):
        return await response.json()


async def test_fake_takes_the_vector_url_encoded_and_refuses_an_unencoded_plus(frozen_fake):
    base = f"access_token=vector-robot&timestamp={VECTOR_TS}"
    assert await _post(frozen_fake.url, f"{base}&sign={VECTOR_ENCODED}") == {
        "errcode": 0,
        "errmsg": "ok",
    }
    # a raw "+" is a space once the query is decoded, exactly as DingTalk reads it
    refused = await _post(frozen_fake.url, f"{base}&sign={VECTOR_B64}")
    assert refused["errcode"] == 310000 and refused["errmsg"].startswith("sign not match")
    assert len(frozen_fake.state.robot_posts) == 1


async def test_fake_refuses_a_signed_robot_post_without_timestamp_or_sign(frozen_fake):
    for query in ("access_token=vector-robot", f"access_token=vector-robot&sign={VECTOR_ENCODED}"):
        refused = await _post(frozen_fake.url, query)
        assert refused["errcode"] == 310000 and refused["errmsg"].startswith("invalid timestamp")
    missing_sign = await _post(frozen_fake.url, f"access_token=vector-robot&timestamp={VECTOR_TS}")
    assert missing_sign["errmsg"].startswith("sign not match")


async def test_fake_refuses_a_timestamp_more_than_an_hour_off(frozen_fake):
    stale = VECTOR_TS - 3_600_001
    query = robot_query("vector-robot", VECTOR_SECRET, stale)
    refused = await _post(frozen_fake.url, query)
    assert refused["errcode"] == 310000 and refused["errmsg"].startswith("invalid timestamp")
    edge = robot_query("vector-robot", VECTOR_SECRET, VECTOR_TS - 3_600_000)
    assert (await _post(frozen_fake.url, edge))["errcode"] == 0


async def test_client_signature_is_checked_a_wrong_secret_gets_dingtalks_sign_error(channel):
    async with running_fake() as fake:
        good = await channel.send(robot_ref(fake.url), outgoing())
        assert isinstance(good, Sent)
        wrong = robot_ref(fake.url, secret="SECnot-the-robots-secret-0000")
        refused = await channel.send(wrong, outgoing())
        assert isinstance(refused, Failed) and refused.code == "310000"
        assert "sign not match" in refused.reason and "secret" in refused.reason
        assert [p.signed for p in fake.state.robot_posts] == [True]
        assert fake.state.robot_posts[0].access_token == ROBOT_TOKEN


async def test_client_signs_every_attempt_with_a_fresh_timestamp(channel):
    async with running_fake() as fake:
        fake.state.skew = 2 * 3600.0  # the fake's clock is two hours ahead of ours
        refused = await channel.send(robot_ref(fake.url), outgoing())
        assert isinstance(refused, Failed) and refused.code == "310000"
        assert "clock" in refused.reason
        assert fake.state.counts["robot"] == 2  # one fresh-timestamp retry, then it gives up
        fake.state.skew = 0.0
        assert isinstance(await channel.send(robot_ref(fake.url), outgoing()), Sent)
