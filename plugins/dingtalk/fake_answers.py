"""What the fake DingTalk answers with: its app key, errcode replies, injected faults."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import msgspec
from aiohttp import web

from plugins.dingtalk.fake_state import FakeDingTalk

log = logging.getLogger(__name__)

FAKE = web.AppKey("dingtalk_fake", FakeDingTalk)

DOC = "more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"


def ok(**extra: Any) -> web.Response:
    return web.json_response({"errcode": 0, "errmsg": "ok", **extra})


def err(errcode: int, errmsg: str, **extra: Any) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": errmsg, **extra})


def top_error(sub_code: str, sub_msg: str) -> web.Response:
    """A topapi refusal: errcode 88 with the real reason in sub_code / sub_msg."""
    return err(
        88,
        f"ding talk error[subcode={sub_code},submsg={sub_msg}]",
        sub_code=sub_code,
        sub_msg=sub_msg,
        request_id=secrets.token_hex(6),
    )


def param_error(detail: str) -> web.Response:
    return top_error("isv.invalid-parameter", detail)


async def fault(
    state: FakeDingTalk, route: str, recipients: list[str] | None = None
) -> web.Response | None:
    """Count the request; answer an injected fault for it (after its delay), if there is one."""
    state.counts[route] += 1
    injected = state.take_fault(route, recipients or [])
    if injected is None:
        return None
    if injected.delay:
        await asyncio.sleep(injected.delay)
    if injected.status is not None:
        if injected.body is not None:
            return web.json_response(injected.body, status=injected.status)
        return web.Response(status=injected.status, text=f"fake DingTalk: HTTP {injected.status}")
    if injected.body is not None:
        return web.json_response(injected.body)
    return None  # only slow: answer normally


def parse_json(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
