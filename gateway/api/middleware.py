"""The API middleware: per-address limits, the access list, API keys, and errors as JSON."""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.api.limits import REQUEST_LIMITS, TooMany, key_checked, retry_after
from gateway.api.routing import json_response
from gateway.callbacks import CALLBACK_PREFIX
from gateway.errors import GatewayError
from gateway.redact import request_path
from gateway.relay.access import client_address
from gateway.services import SERVICES
from gateway.store import UNAVAILABLE

log = logging.getLogger(__name__)

HEALTH = "/api/v1/health"
PUBLIC_PATHS = frozenset({HEALTH, "/api/openapi.json"})
API_KEY = web.RequestKey("api_key", object)


def error_body(code: str, message: str, field: str | None = None) -> dict:
    error = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


@web.middleware
async def guard(request: web.Request, handler) -> web.StreamResponse:
    """The one API middleware (each extra layer costs every request): the per-address budgets
    of callers without a known key, the access list, the API key, then the handler, with every
    refusal or failure turned into a JSON error."""
    known = request.config_dict[SERVICES].api_keys.known(request.headers.get("Authorization"))
    return await request.config_dict[REQUEST_LIMITS].screen(
        request, known, lambda: _answer(request, handler), _too_many
    )


def _too_many(request: web.Request, exc: TooMany) -> web.Response:
    return json_response(
        error_body("too_many_requests", exc.message), 429, {"Retry-After": retry_after(exc)}
    )


async def _answer(request: web.Request, handler) -> web.StreamResponse:
    try:
        path = request.path
        if path != HEALTH and not path.startswith(CALLBACK_PREFIX + "/"):
            await _check_access(request)
        if path.startswith("/api/") and path not in PUBLIC_PATHS:
            request[API_KEY] = await request.app[SERVICES].api_keys.check(
                request.headers.get("Authorization")
            )
            key_checked(request)
        return await handler(request)
    except GatewayError as exc:
        retry = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry)} if retry else None
        return json_response(error_body(exc.code, exc.message, exc.field), exc.status, headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status, "http_error"
        )
        allow = exc.headers.get("Allow")  # RFC 9110: a 405 lists the methods that would do
        if allow is None:
            return json_response(error_body(code, exc.reason), exc.status)
        message = f"{request.method} is not allowed here; allowed: {allow}"
        return json_response(error_body(code, message), exc.status, {"Allow": allow})
    except UNAVAILABLE as exc:
        if request.transport is None or request.transport.is_closing():
            # the caller hung up (mid-body, say): not the database, and nobody reads an answer
            log.info("%s %s: the client went away: %r", request.method, request_path(request), exc)
            return web.Response(status=400)
        log.warning("%s %s: database unavailable: %r", request.method, request_path(request), exc)
        # A connection lost or a deadline passed mid-commit may still have committed: say
        # how to retry safely rather than promise that nothing was accepted.
        message = (
            "the database is unavailable or did not answer in time; try again later (with"
            " the same Idempotency-Key a retry cannot send the message twice)"
        )
        return json_response(error_body("unavailable", message), 503, headers={"Retry-After": "5"})
    except Exception:
        log.exception("%s %s failed", request.method, request_path(request))
        return json_response(error_body("internal", "internal error; it has been logged"), 500)


async def _check_access(request: web.Request) -> None:
    """The access list (访问控制): once it has entries, callers outside them get 403.

    Health checks and provider callbacks (which prove themselves by signature) are exempt.
    ``X-Forwarded-For`` counts only from a proxy in ``MSGGATE_TRUSTED_PROXIES``.
    """
    relay = request.config_dict[SERVICES].relay
    if relay is not None:
        await relay.access.require(
            lambda: client_address(
                request.remote,
                request.headers.getall("X-Forwarded-For", []),
                relay.trusted_proxies,
            )
        )
