"""Channels that send approved templates only (SMS, voice notifications, outbound calls) refuse a
message without its template when it is accepted — a 422 naming ``template`` — instead of
accepting it and failing the delivery later; the console's test form takes the template and its
variables."""

from __future__ import annotations

import html
import re

import aiosmtplib
import pytest

from tests.browser_fixtures import add_console_user
from tests.gateway_fixtures import unique
from tests.relay_support import RELAY_DOMAIN, message_ids, start_relay
from tests.test_console_http import Client

TEMPLATE_CHANNELS = (
    ("sms", "13800138000", "SMS_123456789"),
    ("voice", "13800138000", "TTS_123456789"),
    ("outbound", "13900000000", "1234"),
)


async def test_template_channels_refuse_a_message_without_its_template_at_accept(gateway):
    for channel, recipient, template in TEMPLATE_CHANNELS:
        name = unique(channel)
        await gateway.create_account(channel, name, sandbox=True)
        message = {
            "channel": channel,
            "account": name,
            "recipients": [recipient],
            "variables": {"code": "1234"},
        }
        for missing in ({}, {"template": "   "}):
            status, body = await gateway.post("/api/v1/messages", {**message, **missing})
            assert status == 422, (channel, body)
            assert body["error"]["field"] == "template", body
            assert "template" in body["error"]["message"], body
        status, body = await gateway.post(
            "/api/v1/messages", {**message, "template": template, "variables": {"code": [1]}}
        )
        assert status == 422 and body["error"]["field"] == "variables", (channel, body)
        accepted = await gateway.send(**message, template=template)
        done = await gateway.wait_done(accepted["id"])
        assert [d["status"] for d in done["deliveries"]] == ["sent"], done
        assert done["template"] == template


async def test_the_outbound_script_id_is_checked_at_accept(gateway):
    name = unique("outbound")
    await gateway.create_account("outbound", name, sandbox=True)
    message = {"channel": "outbound", "account": name, "recipients": ["13900000000"]}
    status, body = await gateway.post(
        "/api/v1/messages", {**message, "template": "script-1", "text": "x"}
    )
    assert status == 422 and body["error"]["field"] == "template", body
    assert "number" in body["error"]["message"]


async def test_channels_without_templates_still_take_plain_text(gateway):
    name = unique("mail")
    await gateway.create_account("email", name, sandbox=True)
    accepted = await gateway.send(
        channel="email", account=name, recipients=["a@example.com"], subject="s", text="t"
    )
    assert accepted["deliveries"][0]["status"] == "queued"


async def test_console_test_form_sends_a_template_with_its_variables(gateway):
    account = unique("sms")
    await gateway.create_account("sms", account, sandbox=True)
    c = Client(gateway)
    try:
        assert await c.login(await add_console_user(gateway, "operator")) == 303
        status, page, _ = await c.get("/send")
        assert status == 200
        assert 'id="f-template"' in page and 'id="f-variables"' in page
        assert "模板变量" in page and "名称=值" in page  # labelled in the user's language
        token = await c.csrf()
        form = {"_csrf": token, "account": account, "recipients": "13800138000"}

        status, page, _ = await c.post("/send", {**form, "text": "您的验证码为 1234"})
        assert status == 422
        error = re.search(r'id="template-error">([^<]+)<', page)
        assert error and "该渠道只能发送已审核的模板" in html.unescape(error.group(1)), page

        status, page, _ = await c.post(
            "/send", {**form, "template": "SMS_1", "variables": "code 1234"}
        )
        assert status == 422 and 'id="variables-error">每行一项' in page

        for variables, expected in (
            ("code=1234\nproduct = msggate\n", {"code": "1234", "product": "msggate"}),
            ('{"code": 1234}', {"code": 1234}),
        ):
            status, _, answer = await c.post(
                "/send", {**form, "template": "SMS_1", "variables": variables}
            )
            assert status == 303, variables
            message_id = answer.headers["Location"].split("?")[0].rstrip("/").rsplit("/", 1)[1]
            status, body = await gateway.get(f"/api/v1/messages/{message_id}")
            assert status == 200 and body["template"] == "SMS_1"
            assert body["variables"] == expected
    finally:
        await c.close()


async def test_the_relay_refuses_mail_for_a_template_channel_route_without_a_template(
    make_gateway, tmp_path
):
    sms = unique("sms")
    config = tmp_path / "msggate.toml"
    config.write_text(
        "[relay.routes]\n"
        f'sms = {{ channel = "sms", account = "{sms}" }}\n'
        f'code = {{ channel = "sms", account = "{sms}", template = "SMS_1" }}\n'
    )
    relay = await start_relay(make_gateway, tmp_path, config=str(config))
    await relay.gw.create_account("sms", sms, sandbox=True)
    user = await relay.user()
    mail = b"From: app@example.com\r\nSubject: disk alert\r\n\r\ndisk 95% full\r\n"
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:  # permanent: no retry can help
        await relay.send(mail, [f"13800138000@sms.{RELAY_DOMAIN}"], user=user)
    assert refused.value.code == 554 and "template" in refused.value.message
    code, reply = await relay.send(mail, [f"13800138000@code.{RELAY_DOMAIN}"], user=user)
    assert code == 250, reply
    done = await relay.gw.wait_done(message_ids(reply)[0])
    assert done["template"] == "SMS_1" and done["deliveries"][0]["status"] == "sent"
