"""Receipt pushes from Alibaba Cloud (SmsReport, VoiceReport): who may call, what to answer.

Alibaba Cloud's "HTTP batch push" POSTs a JSON array to a URL set in its console and signs
nothing (docs/providers.md §5.6, §6.4: no signing scheme is documented). So a receipt route is
``/callbacks/<product>/aliyun/{account}/{token}`` and the caller is verified as far as that
allows:

1. ``{account}`` must be an account of the route's channel whose ``receipt_token`` (a secret,
   sealed at rest) equals ``{token}`` — compared in constant time; an account without a token
   takes no receipts;
2. when the account lists ``receipt_ips``, the caller's address must be in one of them
   (``X-Forwarded-For`` counts from a proxy in ``MSGGATE_TRUSTED_PROXIES``);
3. a receipt only changes a delivery of that account whose provider id (and number, where the
   push names one) it names, so a forged receipt for an id we never got changes nothing, and
   one account's token cannot settle another account's deliveries.

The URL to configure in the console is therefore
``https://<msggate>/callbacks/sms/aliyun/<account name>/<receipt_token>``.
Alibaba Cloud retries a push that is not answered HTTP 200 with a numeric ``code`` (after 1, 5
and 10 minutes), so a refused push is 403 (the same answer whatever the reason) and a push we
could not store is 500. Items are read one by one: a batch with unreadable items is taken
(200) with those items listed under ``rejected``, since pushing them again cannot help.

:func:`report_route` builds such a route for a product from the function that turns its pushed
items into receipts; every receipt it records is scoped to the account the URL names, so one
account's pushes can only settle that account's deliveries.
"""

from __future__ import annotations

import datetime as dt
import hmac
import ipaddress
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from gateway.callbacks import CallbackRoute
from gateway.channel import AccountRef
from gateway.model import Receipt
from gateway.receipts import unstorable
from plugins.aliyun.account import AliyunAccount

if TYPE_CHECKING:
    from gateway.receipts import Receipts

log = logging.getLogger(__name__)

ACCEPTED: dict[str, Any] = {"code": 0, "msg": "接收成功"}
NOT_ACCEPTED = "unknown account or token"
CHINA = dt.timezone(dt.timedelta(hours=8))  # pushed times are Beijing time
CALL_STATUS_TEXT = {  # help.aliyun.com/document_detail/55085, for reports without a message
    "200000": "listened to the end",
    "200001": "hung up early",
    "200002": "busy",
    "200003": "rang, not answered",
    "200004": "invalid number",
    "200005": "unreachable (rejected, carrier or anti-spam)",
    "200006": "audio format error",
    "200007": "out of the service area",
    "200010": "powered off",
    "200011": "number suspended",
    "200012": "call lost (restricted)",
    "200100": "call ended",
    "999999": "system error",
    "500": "carrier error",
    "400": "network element busy",
}
"""What the final status codes of a call report (VoiceReport and its kin) mean."""

ParseReports = Callable[[list[dict[str, Any]]], list[Receipt]]


def accepted(rejected: list[dict[str, Any]] | None = None) -> web.Response:
    """The answer the push protocol expects for a receipt batch we took; items we could not
    take are listed under ``rejected`` (index and reason), which the provider ignores."""
    return web.json_response({**ACCEPTED, "rejected": rejected} if rejected else ACCEPTED)


def refused(status: int, why: str) -> web.Response:
    return web.json_response({"code": status, "msg": why}, status=status)


def china_time(value: object) -> dt.datetime | None:
    """A pushed ``2017-01-01 00:00:00`` (Beijing time) as an aware datetime, or None."""
    try:
        text = str(value).strip()
        return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=CHINA)
    except ValueError:
        return None


def _allowed(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None, cidrs: list[str]
) -> bool:
    if not cidrs:
        return True
    if address is None:
        return False
    return any(address in ipaddress.ip_network(c, strict=False) for c in cidrs)


async def verified_account(
    request: web.Request, receipts: Receipts, account_type: type[AliyunAccount]
) -> tuple[AccountRef | None, web.Response | None]:
    """The account a receipt push is for, or the response refusing the caller.

    Reads ``{account}`` and ``{token}`` from the route and the account (with its secrets)
    through ``receipts.account``; an account whose config is not an ``account_type`` (another
    channel's, or a sandbox) is as unknown as a missing one.
    """
    name = request.match_info.get("account", "")
    token = request.match_info.get("token", "")
    product = account_type.__name__
    account = await receipts.account(name)
    config = account.config if account is not None else None
    # Every refusal answers the same, so a caller cannot tell which accounts exist or take
    # receipts; the log says which it was (never the token).
    if not isinstance(config, account_type):
        log.warning("%s receipt push for unknown account %r refused", product, name)
        return None, refused(403, NOT_ACCEPTED)
    if not config.receipt_token:
        log.warning("%s %r has no receipt_token: receipt push refused", product, name)
        return None, refused(403, NOT_ACCEPTED)
    if not hmac.compare_digest(token.encode(), config.receipt_token.encode()):
        log.warning("%s receipt push for %r with a wrong token refused", product, name)
        return None, refused(403, NOT_ACCEPTED)
    caller = receipts.caller(request)
    if not _allowed(caller, config.receipt_ips):
        log.warning("%s receipt push for %r from %s refused", product, name, caller)
        return None, refused(403, NOT_ACCEPTED)
    return account, None


async def json_array(request: web.Request) -> list[Any] | None:
    """The pushed JSON array (an object alone is a batch of one), or None when the body is
    neither. Its items are checked one by one (:func:`read_items`)."""
    try:
        body = await request.json()
    except (ValueError, RecursionError):
        return None
    if isinstance(body, dict):
        body = [body]
    return body if isinstance(body, list) else None


def read_items(
    pushed: list[Any], parse: ParseReports, account: str
) -> tuple[list[Receipt], list[dict[str, Any]]]:
    """The receipts of the pushed items, each read on its own, and the items refused (their
    index and why): one item that is not an object, that ``parse`` cannot read, or that holds
    text the database cannot store must not cost the others their receipts."""
    found: list[Receipt] = []
    rejected: list[dict[str, Any]] = []
    for index, item in enumerate(pushed):
        if not isinstance(item, dict):
            rejected.append({"index": index, "reason": "not a JSON object"})
            continue
        try:
            parsed = parse([item])
        except Exception as exc:  # a parser tripping over garbage: this item only
            rejected.append({"index": index, "reason": f"unreadable ({type(exc).__name__})"})
            continue
        why = next((w for w in map(unstorable, parsed) if w is not None), None)
        if why is not None:
            rejected.append({"index": index, "reason": why})
            continue
        found += [msgspec.structs.replace(r, account=account) for r in parsed]
    return found, rejected


def report_route(
    channel: str, account_type: type[AliyunAccount], parse: ParseReports, items: str
) -> CallbackRoute:
    """``POST /callbacks/<channel>/aliyun/{account}/{token}``, taking pushed batches.

    The caller is verified (:func:`verified_account`), ``parse`` turns the pushed items into
    receipts (leaving out what settles nothing: progress events, items without an id), and
    each receipt is recorded for the account the URL names. ``items`` names what the array
    holds, for the 400 answer to a body that is not one.
    """

    async def receive(request: web.Request, receipts: Receipts) -> web.StreamResponse:
        account, refusal = await verified_account(request, receipts, account_type)
        if refusal is not None:
            return refusal
        assert account is not None
        pushed = await json_array(request)
        if pushed is None:
            return refused(400, f"expected a JSON array of {items}")
        found, rejected = read_items(pushed, parse, account.name)
        try:
            matched = await receipts.record(channel, found)
        except Exception:
            log.exception("%s receipts could not be stored; Alibaba Cloud will push again", channel)
            return refused(500, "not stored, push again")
        log.info(
            "%s receipts for %r: %d items, %d results, %d matched, %d refused",
            channel,
            account.name,
            len(pushed),
            len(found),
            matched,
            len(rejected),
        )
        if rejected:
            log.warning("%s receipts for %r refused: %s", channel, account.name, rejected[:10])
        # a refused item would be refused again: answer "taken" so it is not pushed again
        return accepted(rejected)

    return CallbackRoute("POST", f"/{channel}/aliyun/{{account}}/{{token}}", receive)
