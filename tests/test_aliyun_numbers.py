"""Mainland phone numbers (plugins.aliyun.numbers): every spelling people type becomes the one
bare form the gateway stores, de-duplicates and matches receipts by; end to end, a message that
names one mobile twice in two spellings is one delivery."""

from __future__ import annotations

import pytest

from plugins.aliyun.numbers import mobile_problem, normalize, phone_problem
from tests.gateway_fixtures import unique

MOBILE = "13800138000"


@pytest.mark.parametrize(
    ("typed", "bare"),
    [
        ("13800138000", MOBILE),
        (" 13800138000 ", MOBILE),
        ("+8613800138000", MOBILE),
        ("008613800138000", MOBILE),
        ("8613800138000", MOBILE),
        ("+86 138 0013 8000", MOBILE),
        ("+86 138-0013-8000", MOBILE),
        ("(+86) 138 0013 8000", MOBILE),
        ("+86 10 1234 5678", "01012345678"),  # a landline gets its trunk 0 back
        ("0086-571-8888-9999", "057188889999"),
        ("+86 010 1234 5678", "01012345678"),  # the 0 written anyway
        ("(010) 1234-5678", "01012345678"),
        ("0755 123456", "0755123456"),
    ],
)
def test_spellings_of_a_mainland_number_become_its_bare_form(typed, bare):
    assert normalize(typed) == bare
    assert normalize(bare) == bare  # normalising twice changes nothing
    assert phone_problem(bare) is None


@pytest.mark.parametrize(
    "typed", ["12345", "+1 415 555 0100", "someone@example.com", "23800138000", "+86 12345", ""]
)
def test_what_is_no_mainland_number_is_left_as_typed_for_the_check_to_explain(typed):
    assert normalize(typed) == typed.strip()
    assert phone_problem(normalize(typed)) and mobile_problem(normalize(typed))


def test_mobile_problem_refuses_a_landline_and_phone_problem_takes_it():
    assert mobile_problem("01012345678") and "11 digits" in mobile_problem("01012345678")
    assert phone_problem("01012345678") is None
    assert mobile_problem(MOBILE) is None and phone_problem(MOBILE) is None


def test_a_long_refused_recipient_is_not_echoed_back():
    assert "x" * 41 not in phone_problem("x" * 41)
    assert "'12345'" in phone_problem("12345")


async def test_two_spellings_of_one_mobile_in_one_message_are_one_delivery_of_the_bare_number(
    gateway,
):
    account = unique("sms-sandbox")
    await gateway.create_account("sms", account, sandbox=True)
    accepted = await gateway.send(
        channel="sms",
        account=account,
        recipients=["+86 138 0013 8000", MOBILE],
        template="SMS_200000001",
        variables={"name": "值班员", "content": "磁盘已满"},
    )
    assert [d["recipient"] for d in accepted["deliveries"]] == [MOBILE]
    done = await gateway.wait_done(accepted["id"])
    assert [(d["recipient"], d["status"]) for d in done["deliveries"]] == [(MOBILE, "sent")]
    status, listing = await gateway.get("/api/v1/sandbox/messages", params={"account": account})
    assert status == 200, listing
    assert [item["recipient"] for item in listing["items"]] == [MOBILE]
