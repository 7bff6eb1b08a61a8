"""Receipt pushes from Alibaba Cloud (SmsReport, VoiceReport): who may call, what to answer.

Alibaba Cloud's "HTTP batch push" POSTs a JSON array to a URL set in its console and signs
nothing (specs/channels.md §5.6, §6.4: no signing scheme is documented). So a receipt route is
``/callbacks/<product>/aliyun/{account}/{token}`` and the caller is verified as far as that
allows:

1. ``{account}`` must be an account of the route's channel whose ``receipt_token`` (a secret,
   sealed at rest) equals ``{token}`` — compared in constant time; an account without a token
   takes no receipts;
2. when the account lists ``receipt_ips``, the caller's address must be in one of them;
3. a receipt only changes a delivery whose provider id *and* number it names, so a forged
   receipt for an id we never got changes nothing.

The URL to configure in the console is therefore
``https://<msggate>/callbacks/sms/aliyun/<account name>/<receipt_token>``.
Alibaba Cloud retries a push that is not answered HTTP 200 with a numeric ``code`` (after 1, 5
and 10 minutes), so a refused push is 403 and a push we could not store is 500.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from typing import Any

from aiohttp import web

from plugins.aliyun.account import AliyunAccount

log = logging.getLogger(__name__)

ACCEPTED: dict[str, Any] = {"code": 0, "msg": "接收成功"}


def accepted() -> web.Response:
    """The answer the push protocol expects for a receipt batch we took."""
    return web.json_response(ACCEPTED)


def refused(status: int, why: str) -> web.Response:
    return web.json_response({"code": status, "msg": why}, status=status)


def _allowed(remote: str | None, cidrs: list[str]) -> bool:
    if not cidrs:
        return True
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(c, strict=False) for c in cidrs)


async def verified_account(
    request: web.Request, channel: str
) -> tuple[AliyunAccount | None, web.Response | None]:
    """The account a receipt push is for, or the response refusing the caller.

    Reads ``{account}`` and ``{token}`` from the route and the account (with its secrets) from
    the gateway's account service.
    """
    from gateway.services import SERVICES  # the gateway's services exist once it serves

    name = request.match_info.get("account", "")
    token = request.match_info.get("token", "")
    services = request.app[SERVICES]
    row = await services.store.account_by_name(name)
    if row is None or row.channel != channel or row.sandbox:
        log.warning("%s receipt push for unknown account %r refused", channel, name)
        return None, refused(403, "unknown account or token")
    resolved = await services.accounts.resolve(row.id, row.revision)
    config = resolved[1].config if resolved is not None else None
    expected = getattr(config, "receipt_token", None)
    if not isinstance(config, AliyunAccount) or not expected:
        log.warning("%s account %r has no receipt_token: receipt push refused", channel, name)
        return None, refused(403, "receipts are not enabled for this account")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        log.warning("%s receipt push for %r with a wrong token refused", channel, name)
        return None, refused(403, "unknown account or token")
    if not _allowed(request.remote, config.receipt_ips):
        log.warning("%s receipt push for %r from %s refused", channel, name, request.remote)
        return None, refused(403, "caller not allowed")
    return config, None


async def json_array(request: web.Request) -> list[dict[str, Any]] | None:
    """The pushed JSON array of objects, or None when the body is not one."""
    try:
        body = await request.json()
    except ValueError:
        return None
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list) or not all(isinstance(item, dict) for item in body):
        return None
    return body
