"""The legacy DingTalk open API (``oapi.dingtalk.com``) calls the work-notice channel makes.

API version: the legacy token ``GET /gettoken?appkey=&appsecret=`` and the topapi
``POST /topapi/message/corpconversation/asyncsend_v2`` / ``getsendresult`` with the token in the
``access_token`` query parameter (docs/providers.md §2.2–2.3). Tokens of one family are used
only with that family, since whether v1.0 tokens work here is not documented.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import yarl

from gateway.channel import Failed, Retry
from gateway.httpcall import Answer, call_json
from gateway.model import Receipt
from gateway.tokens import Token
from plugins.dingtalk.account import AppAccount
from plugins.dingtalk.classify import token_outcome
from plugins.dingtalk.http import JSON_UTF8, Http, redact

log = logging.getLogger(__name__)

ASYNCSEND = "/topapi/message/corpconversation/asyncsend_v2"
GETSENDRESULT = "/topapi/message/corpconversation/getsendresult"


def _url(config: AppAccount, path: str, token: str) -> yarl.URL:
    return yarl.URL(config.endpoint + path).with_query(access_token=token)


async def fetch_token(http: Http, config: AppAccount) -> Token | Retry | Failed:
    """A new access token for the app (idempotent: a timeout is simply retried)."""
    answer = await call_json(
        http.session(),
        "GET",
        config.endpoint + "/gettoken",
        idempotent=True,
        timeout=config.timeout,
        params={"appkey": config.appkey, "appsecret": config.appsecret},
    )
    if not isinstance(answer, Answer):
        return redact(answer, config.appsecret)
    return redact(token_outcome(answer), config.appsecret)


async def asyncsend(
    http: Http, config: AppAccount, token: str, body: bytes
) -> Answer | Retry | Failed:
    """Queue one work notice. Not idempotent: a timeout after sending is "unknown"."""
    answer = await call_json(
        http.session(),
        "POST",
        _url(config, ASYNCSEND, token),
        idempotent=False,
        timeout=config.timeout,
        data=body,
        headers=JSON_UTF8,
    )
    return redact(answer, token)


async def getsendresult(
    http: Http, config: AppAccount, token: str, task_id: int
) -> Answer | Retry | Failed:
    """What became of a queued work notice: read, unread, invalid, forbidden ... userids."""
    body = msgspec.json.encode({"agent_id": config.agent_id, "task_id": task_id})
    answer = await call_json(
        http.session(),
        "POST",
        _url(config, GETSENDRESULT, token),
        idempotent=True,
        timeout=config.timeout,
        data=body,
        headers=JSON_UTF8,
    )
    return redact(answer, token)


def send_result_of(body: Any) -> dict[str, Any]:
    """The ``send_result`` object of a getsendresult answer (top level or under ``result``)."""
    if not isinstance(body, dict):
        return {}
    found = body.get("send_result")
    if found is None and isinstance(body.get("result"), dict):
        found = body["result"].get("send_result")
    return found if isinstance(found, dict) else {}


# list name -> (delivered, code, reason)
_OUTCOMES = {
    "read_user_id_list": (True, "read", None),
    "unread_user_id_list": (True, "unread", None),
    "invalid_user_id_list": (False, "invalid_user", "DingTalk does not know this userid"),
    "forbidden_user_id_list": (False, "forbidden", "DingTalk did not deliver it (a send limit)"),
    "failed_user_id_list": (False, "failed", "DingTalk failed to deliver it"),
}


def receipts_from(task_id: int | str, send_result: dict[str, Any]) -> list[Receipt]:
    """Receipts for a task's userids (one delivery per task: provider id = task id)."""
    forbidden = {
        str(item.get("userid")): item
        for item in send_result.get("forbidden_list") or []
        if isinstance(item, dict)
    }
    receipts = []
    for field, (delivered, list_code, list_reason) in _OUTCOMES.items():
        for userid in send_result.get(field) or []:
            code, reason = list_code, list_reason
            detail: dict[str, Any] = {"list": field}
            item = forbidden.get(str(userid))
            if item is not None and item.get("code"):
                code, reason = str(item["code"]), f"{list_reason} (code {item['code']})"
                detail["forbidden"] = item
            receipts.append(
                Receipt(
                    provider_id=str(task_id),
                    delivered=delivered,
                    recipient=str(userid),
                    code=code,
                    reason=reason,
                    detail=detail,
                )
            )
    return receipts
