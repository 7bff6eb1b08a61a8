"""Receipt pushes from hostile or broken callers: each item stands on its own, every refusal
looks the same from outside, the token in the URL never reaches a log line, and an account's
allowed addresses are checked on the caller behind a trusted proxy."""

from __future__ import annotations

import json
import logging

import aiohttp
from aiohttp import web

from gateway import hookimpl
from gateway.callbacks import CallbackRoute
from gateway.plugins import Plugins
from gateway.testing import serving
from plugins.sms import plugin as sms_plugin
from plugins.sms.fake import FakeSms, make_app
from tests.gateway_fixtures import unique
from tests.test_sms_receipts import (
    BAD_PHONE,
    KEY_ID,
    OK_PHONE,
    SECRET,
    TOKEN,
    account_config,
    setup,
)

__all__ = ["setup"]  # the fixture: a gateway with an SMS account on the fake provider


async def push(url: str, data: bytes) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.post(url, data=data, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def test_bad_items_are_refused_one_by_one_and_the_good_ones_recorded(setup):
    done = await setup.send(OK_PHONE, BAD_PHONE, "13800138003")
    biz = {d["recipient"]: d["provider_id"] for d in done["deliveries"]}

    def report(phone: str, **fields) -> dict:
        return {"phone_number": phone, "biz_id": biz[phone], "success": True, **fields}

    items = [
        report(OK_PHONE),
        "not an object",
        report(BAD_PHONE, success=False, err_msg="bad\x00text"),  # PostgreSQL stores no NUL
        {"biz_id": {"nested": "garbage"}, "phone_number": ["x"]},  # no usable id: skipped
        report("13800138003", success=False, err_msg="\ud800"),  # a lone surrogate
    ]
    body = json.dumps(items)  # escaped as \u0000 and \ud800, as a provider would send them
    status, answer = await push(setup.callback(), body.encode())
    assert status == 200 and answer["code"] == 0, answer  # a retry would not help the others
    rejected = {r["index"]: r["reason"] for r in answer["rejected"]}
    assert set(rejected) == {1, 2, 4}
    assert "reason" in rejected[2] and "NUL" in rejected[2]
    assert "Unicode" in rejected[4]
    final = await setup.gw.wait_done(done["id"], statuses=frozenset({"delivered", "sent"}))
    by_phone = {d["recipient"]: d["status"] for d in final["deliveries"]}
    assert by_phone == {OK_PHONE: "delivered", BAD_PHONE: "sent", "13800138003": "sent"}


async def test_every_refused_push_gets_the_same_answer(setup):
    no_token = unique("sms-notoken")
    sandbox = unique("sms-sandbox")
    for body in (
        {
            "channel": "sms",
            "name": no_token,
            "config": account_config(setup.url, receipt_token=None),
        },
        {"channel": "sms", "name": sandbox, "sandbox": True},
    ):
        status, answer = await setup.gw.post("/api/v1/accounts", body)
        assert status == 201, answer
    reports = json.dumps([{"phone_number": OK_PHONE, "biz_id": "1^0", "success": True}])
    answers = set()
    for url in (
        setup.callback(account="no-such-account"),
        setup.callback(account=no_token),
        setup.callback(account=sandbox),
        setup.callback(token="not-the-token-at-all"),
        setup.callback(account="bad%00name"),  # a name no database could hold
    ):
        status, answer = await push(url, reports.encode())
        answers.add((status, json.dumps(answer, sort_keys=True)))
    assert answers == {(403, json.dumps({"code": 403, "msg": "unknown account or token"}))}


class BoomPlugin:
    """A callback route that fails, as a provider's route may on a bug of ours."""

    @hookimpl
    def msggate_callback_routes(self):
        async def boom(request: web.Request, receipts) -> web.Response:
            raise RuntimeError("a bug in a receipt route")

        return [CallbackRoute("POST", "/boom/{account}/{token}", boom)]


async def test_the_token_in_a_callback_url_never_reaches_the_logs(make_gateway, caplog):
    plugins = Plugins.load(extra=[("sms", sms_plugin), ("boom", BoomPlugin())])
    gw = await make_gateway(plugins=plugins)
    caplog.set_level(logging.INFO)
    status, _ = await push(f"{gw.url}/callbacks/boom/acct/{TOKEN}", b"[]")
    assert status == 500
    status, _ = await push(f"{gw.url}/callbacks/sms/aliyun/bad%00name/{TOKEN}", b"[]")
    assert status == 403
    assert "/callbacks/boom/acct/***" in caplog.text  # the failure is logged, masked
    assert TOKEN not in caplog.text


async def test_allowed_receipt_addresses_are_checked_on_the_forwarded_caller(make_gateway):
    fake = FakeSms(keys={KEY_ID: SECRET})
    async with serving(make_app(fake)) as url:
        gw = await make_gateway(
            plugins=Plugins.load(extra=[("sms", sms_plugin)]), trusted_proxies="127.0.0.1"
        )
        name = unique("sms-ips")
        config = account_config(url, receipt_ips=["203.0.113.0/24"])
        status, body = await gw.post(
            "/api/v1/accounts", {"channel": "sms", "name": name, "config": config}
        )
        assert status == 201, body
        callback = f"{gw.url}/callbacks/sms/aliyun/{name}/{TOKEN}"
        reports = json.dumps([{"phone_number": OK_PHONE, "biz_id": "1^0", "success": True}])
        answers = []
        for forwarded in ("203.0.113.7", "198.51.100.1", "203.0.113.7, 198.51.100.1"):
            headers = {"Content-Type": "application/json", "X-Forwarded-For": forwarded}
            async with (
                aiohttp.ClientSession() as http,
                http.post(callback, data=reports, headers=headers) as answer,
            ):
                answers.append(answer.status)
        assert answers == [200, 403, 403]  # the proxy saw 198.51.100.1 in the last case
