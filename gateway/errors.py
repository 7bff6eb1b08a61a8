"""Domain errors. Each carries the HTTP status and error code the API answers with."""

from __future__ import annotations


class GatewayError(Exception):
    """A refusal the caller can act on: a status, a machine-readable code, a message, a field."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Invalid(GatewayError):
    status = 422
    code = "invalid"


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class Conflict(GatewayError):
    status = 409
    code = "conflict"


class InUse(Conflict):
    code = "in_use"


class Unauthorized(GatewayError):
    status = 401
    code = "unauthorized"


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"


class Unavailable(GatewayError):
    status = 503
    code = "unavailable"
