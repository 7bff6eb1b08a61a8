"""The OpenAPI document, generated from the route table and its msgspec types.

It says what the server enforces: the types' limits (lengths, patterns, formats), typed query
and path parameters, the rules between fields a type declares as ``schema_rules`` (a body
type's JSON Schema keywords such as ``anyOf``), and every status a route can answer. The
schemathesis run in the tests holds the server to it.
"""

from __future__ import annotations

from typing import Any

import msgspec

import gateway
from gateway.api.routing import ROUTES, Route

# What each error status means; which statuses a route lists comes from what the route has.
ERRORS = {
    401: "no valid API key (Authorization: Bearer <key>)",
    403: "the caller's address is not in the access list",
    404: "nothing by that name or id",
    409: "conflicts with what exists (a name taken, an idempotency key used, still in use)",
    413: "the body is too large",
    415: "the body is not JSON: send Content-Type: application/json",
    422: "invalid input: the error names the field",
    429: "too many requests or connections from the caller's address; wait Retry-After seconds",
    503: "the database (or the SMTP relay) is unavailable; nothing was done, try again",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}


def _error_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                },
            }
        },
    }


def error_statuses(r: Route) -> list[int]:
    """The error statuses ``r`` can answer: from its kind (public, body, path), then its own."""
    # 422: text the database cannot store, in any parameter; 429: the per-address limits
    statuses = {422, 429} | set(r.errors)
    if not r.public:
        statuses |= {401, 403, 503}
    if r.path_params:
        statuses.add(404)
    if r.body is not None:
        statuses |= {413, 415}
    return sorted(statuses)


def _param(p: Any, where: str, schema: dict[str, Any]) -> dict[str, Any]:
    param = {"name": p.name, "in": where, "required": where == "path", "schema": schema}
    if p.description:
        param["description"] = p.description
    return param


def openapi_document() -> dict[str, Any]:
    types = [t for r in ROUTES for t in (r.body, r.response) if t is not None]
    params = [(r, p) for r in ROUTES for p in (*r.path_params, *r.query_params)]
    schemas, components = msgspec.json.schema_components(
        [*types, *(p.type for _, p in params)], ref_template="#/components/schemas/{name}"
    )
    by_type = dict(zip(types, schemas[: len(types)], strict=True))
    param_schemas = schemas[len(types) :]
    for kind in {r.body for r in ROUTES if r.body is not None}:
        rules = getattr(kind, "schema_rules", None)
        if rules:
            components[kind.__name__].update(rules)
    components["Error"] = _error_schema()
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    param_schema = {(id(r), p.name): s for (r, p), s in zip(params, param_schemas, strict=True)}
    paths: dict[str, dict[str, Any]] = {}
    for r in ROUTES:
        op: dict[str, Any] = {"summary": r.summary, "operationId": r.handler.__name__}
        listed = [_param(p, "path", param_schema[id(r), p.name]) for p in r.path_params]
        listed += [_param(p, "query", param_schema[id(r), p.name]) for p in r.query_params]
        if listed:
            op["parameters"] = listed
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": by_type[r.body]}},
            }
        ok: dict[str, Any] = {"description": "success"}
        if r.response is not None:
            ok["content"] = {"application/json": {"schema": by_type[r.response]}}
        responses: dict[str, Any] = {str(s): ok for s in (r.status, *r.also)}
        for status in error_statuses(r):
            answer = {"description": ERRORS[status], "content": error}
            responses[str(status)] = answer | (
                {"headers": _RETRY_AFTER} if status in {429, 503} else {}
            )
        op["responses"] = responses
        if not r.public:
            op["security"] = [{"bearer": []}]
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "msggate API", "version": gateway.__version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
