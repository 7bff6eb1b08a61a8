"""MIME through the relay: Chinese charsets, RFC 2047, quoted-printable, base64, attachments."""

from __future__ import annotations

import base64
import quopri
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from gateway.relay.mime import decode_bytes, decode_header_text, parse
from gateway.relay.rawmail import prepare
from tests.gateway_fixtures import unique
from tests.relay_support import PASSWORD, message_ids, start_relay

# 喆 and 镕 are GBK-only: a strict gb2312 decoder loses them, and legacy mailers label GBK text
# "gb2312" all the time.
SUBJECT = "服务器告警：喆镕机房温度过高"
BODY = "机房温度 38℃，请立即处理。\n负责人：朱镕基\n"


def b_words(text: str, label: str, split_at: int) -> str:
    """GBK text in RFC 2047 B-encoded words labelled ``label``, split at byte ``split_at``."""
    data = text.encode("gbk")
    halves = (data[:split_at], data[split_at:])
    return " ".join(f"=?{label}?B?{base64.b64encode(h).decode()}?=" for h in halves)


def test_header_words_split_inside_a_gbk_character_are_joined_before_decoding():
    encoded = b_words(SUBJECT, "gb2312", 5)  # byte 5 is the middle of the third character
    assert decode_header_text(encoded) == SUBJECT


def test_q_encoded_name_and_plain_text_mix():
    q = "=?GB2312?Q?" + "".join(f"={b:02X}" for b in "张三".encode("gb2312")) + "?="
    assert decode_header_text(f"{q} <zhangsan@example.com>") == "张三 <zhangsan@example.com>"
    assert decode_header_text("=?utf-8?q?hello_world?=  =?utf-8?q?_again?=") == "hello world again"


def test_raw_8bit_gbk_header_is_decoded():
    raw = b"Subject: " + SUBJECT.encode("gbk") + b"\r\n\r\nbody\r\n"
    assert parse(raw).subject == SUBJECT


def test_unlabelled_8bit_body_falls_back_to_utf8_then_gb18030():
    assert decode_bytes("温度".encode(), None) == "温度"
    assert decode_bytes("温度".encode("gbk"), None) == "温度"
    assert decode_bytes("喆".encode("gbk"), "gb2312") == "喆"


def test_forwarded_message_counts_as_an_attachment_not_the_body():
    inner = EmailMessage()
    inner["Subject"] = "inner"
    inner.set_content("inner body")
    outer = EmailMessage()
    outer["Subject"] = "outer"
    outer.set_content("outer body")
    outer.add_attachment(inner)
    content = parse(outer.as_bytes())
    assert content.text == "outer body\n"
    assert [a.content_type for a in content.attachments] == ["message/rfc822"]


def test_prepare_adds_received_drops_bcc_and_keeps_the_body_bytes():
    raw = b"From: a@x\r\nBcc: secret@x,\r\n other@x\r\nSubject: s\r\n\r\nbody\r\n.dot\r\n"
    out = prepare(raw, b"Received: from x\r\n", message_id="<id@x>", date=False)
    assert out == (
        b"Received: from x\r\nFrom: a@x\r\nSubject: s\r\nMessage-ID: <id@x>\r\n\r\nbody\r\n.dot\r\n"
    )


@pytest.fixture
async def relay(make_gateway, tmp_path):
    return await start_relay(make_gateway, tmp_path)


def legacy_gbk_message(mid: str) -> bytes:
    """What an old Chinese system sends: gb2312 labels, GBK text, split B-words, base64 body."""
    body = base64.encodebytes(BODY.replace("\n", "\r\n").encode("gbk")).decode()
    name = "=?GB2312?Q?" + "".join(f"={b:02X}" for b in "监控中心".encode("gb2312")) + "?="
    return (
        f"From: {name} <monitor@example.com>\r\n"
        f"To: ops@example.com\r\n"
        f"Subject: {b_words(SUBJECT, 'gb2312', 7)}\r\n"
        f"Message-ID: <{mid}@monitor.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: text/plain; charset="gb2312"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{body.replace(chr(10), chr(13) + chr(10))}"
    ).encode("ascii")


async def test_gbk_base64_and_rfc2047_message_arrives_intact(relay):
    user = await relay.user()
    code, reply = await relay.send(legacy_gbk_message(unique("m")), ["ops@example.com"], user=user)
    assert code == 250, reply
    [message_id] = message_ids(reply)
    await relay.gw.wait_done(message_id)
    [recorded] = [m for m in await relay.sandbox() if m["message_id"] == message_id]
    assert recorded["subject"] == SUBJECT
    assert recorded["text"] == BODY
    _, detail = await relay.gw.get(f"/api/v1/messages/{message_id}")
    assert detail["ingress_detail"]["from"] == "监控中心 <monitor@example.com>"


async def test_quoted_printable_text_and_html_alternative_arrive_intact(relay):
    user = await relay.user()
    text = "第一行：磁盘使用率 95%，" + "很长的一行" * 30 + "\n第二行 = 等号\n"
    html = "<p>磁盘使用率 <b>95%</b></p>"
    qp = quopri.encodestring(text.replace("\n", "\r\n").encode("utf-8")).decode()
    raw = (
        "From: app@example.com\r\nTo: ops@example.com\r\n"
        "Subject: =?UTF-8?B?" + base64.b64encode("磁盘告警".encode()).decode() + "?=\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        f"{qp}\r\n"
        "--b1\r\nContent-Type: text/html; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        f"{base64.encodebytes(html.encode()).decode()}\r\n"
        "--b1--\r\n"
    ).encode()
    code, reply = await relay.send(raw, ["ops@example.com"], user=user)
    assert code == 250, reply
    [message_id] = message_ids(reply)
    await relay.gw.wait_done(message_id)
    [recorded] = [m for m in await relay.sandbox() if m["message_id"] == message_id]
    assert recorded["subject"] == "磁盘告警"
    assert recorded["text"].rstrip("\n") == text.rstrip("\n")
    assert recorded["html"] == html


def report_with_attachments(mid: str, spreadsheet: bytes, pdf: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"] = "报表系统 <reports@example.com>"
    msg["To"] = "boss@example.com"
    msg["Reply-To"] = "noreply@example.com"
    msg["Bcc"] = "audit@example.com"
    msg["Subject"] = "月度报表 2025-06"
    msg["Message-ID"] = f"<{mid}@reports.example.com>"
    msg.set_content("见附件。\n")
    msg.add_attachment(
        spreadsheet,
        maintype="application",
        subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename="月度报表.xlsx",
    )
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="summary.pdf")
    return msg.as_bytes(policy=policy.SMTP)


async def test_multipart_with_attachments_is_relayed_as_email_byte_for_byte(
    make_gateway, tmp_path, smtp_server
):
    downstream = smtp_server()
    account = unique("mail")
    relay = await start_relay(make_gateway, tmp_path, account=account)
    status, body = await relay.gw.post(
        "/api/v1/accounts",
        {"channel": "email", "name": account, "config": downstream.account_config()},
    )
    assert status == 201, body
    user = await relay.user()
    spreadsheet, pdf = bytes(range(256)) * 40, b"%PDF-1.4\n" + bytes(range(255, -1, -1)) * 30
    mid = unique("r")
    original = report_with_attachments(mid, spreadsheet, pdf)
    code, reply = await relay.send(
        original, ["boss@example.com", "audit@example.com"], user=user, sender="reports@example.com"
    )
    assert code == 250, reply
    [message_id] = message_ids(reply)
    done = await relay.gw.wait_done(message_id)
    assert {d["status"] for d in done["deliveries"]} == {"sent"}
    received = await downstream.await_messages(2)
    assert sorted(r.rcpt_tos[0] for r in received) == ["audit@example.com", "boss@example.com"]
    for got in received:
        assert got.mail_from == "ops@example.com"  # the account's address on the envelope
        parsed = message_from_bytes(got.data, policy=policy.default)
        assert parsed["Message-ID"] == f"<{mid}@reports.example.com>"
        assert parsed["Subject"] == "月度报表 2025-06"
        assert parsed["From"] == "报表系统 <reports@example.com>"
        assert parsed["Reply-To"] == "noreply@example.com"
        assert parsed["Bcc"] is None
        received_field = parsed.get_all("Received")[0]
        assert "127.0.0.1" in received_field and "msggate" in received_field
        assert "ESMTPSA" in received_field
        attachments = {a.get_filename(): a.get_content() for a in parsed.iter_attachments()}
        assert attachments == {"月度报表.xlsx": spreadsheet, "summary.pdf": pdf}
        # everything after our Received field is what the client sent, minus Bcc
        assert got.data.endswith(original.split(b"\r\n\r\n", 1)[1])


async def test_smtplib_sendmail_of_a_gbk_message_is_taken(relay):
    from tests.relay_support import smtplib_send_async

    user = await relay.user(PASSWORD)
    refused = await smtplib_send_async(
        relay, user, ["ops@example.com"], legacy_gbk_message(unique("m"))
    )
    assert refused == {}
