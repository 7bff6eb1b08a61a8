"""The e-mail fast path writes exactly what EmailMessage writes, or stands aside."""

from __future__ import annotations

import datetime
import itertools

import pytest

from gateway.channel import Outgoing
from plugins.email.account import EmailAccount
from plugins.email.compose import _fast, compose, compose_full

NOW = datetime.datetime(2026, 11, 26, 9, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))
SENDERS = [
    "ops@example.com",
    "Ops Team <ops@example.com>",
    "运维中心 <ops@example.com>",
    "o.p-s+x@mail.example.co",
]
RECIPIENTS = ["a@example.com", "first.last+tag@sub.example.org", "张三 <zhang@example.com>"]
SUBJECTS = [None, "Disk alert", "磁盘告警", "x" * 90, "two  spaces", "=?utf-8?q?x?=", ""]
TEXTS = [
    "hello",
    "line one\nline two\n",
    "a\n\nb\n\n",
    "." + "\n.dot",
    "y" * 100,
    "中文正文",
    "tab\there",
    "\n",
]


@pytest.mark.parametrize(
    ("sender", "recipient", "subject", "text"),
    list(itertools.product(SENDERS, RECIPIENTS, SUBJECTS, TEXTS)),
)
def test_fast_path_matches_the_stdlib_or_declines(sender, recipient, subject, text):
    account = EmailAccount(host="h", port=25, tls="none", from_=sender)
    outgoing = Outgoing(
        delivery_id="01a2-d", message_id="01a2-m", recipient=recipient, subject=subject, text=text
    )
    full = compose_full(account, outgoing, NOW)
    fast = _fast(account, outgoing, NOW)
    if fast is not None:
        assert fast.data == full.data
        assert (fast.sender, fast.recipient, fast.message_id) == (
            full.sender,
            full.recipient,
            full.message_id,
        )
    assert compose(account, outgoing, NOW).data == full.data


def test_the_fast_path_is_taken_for_the_common_case():
    account = EmailAccount(host="h", port=25, tls="none", from_="Ops <ops@example.com>")
    outgoing = Outgoing(
        delivery_id="d",
        message_id="m",
        recipient="a@example.com",
        subject="Disk alert",
        text="disk at 95%\n",
    )
    assert _fast(account, outgoing, NOW) is not None
