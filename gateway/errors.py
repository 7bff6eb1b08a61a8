"""Domain errors. Each carries the HTTP status and error code the API answers with."""

from __future__ import annotations

import msgspec


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


class Unstorable(Invalid):
    """Data the database cannot store as given (a NUL character, a value out of range): the
    caller's own, so it fails their request alone and never its group-commit neighbours."""


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


class UnsupportedMediaType(GatewayError):
    status = 415
    code = "unsupported_media_type"


class Unavailable(GatewayError):
    status = 503
    code = "unavailable"


def split_validation_error(exc: msgspec.ValidationError) -> tuple[str, str | None]:
    """msgspec's "Expected `int`, got `str` - at `$.a[0].b`" as ("Expected ...", "a[0].b").

    A missing field names the field itself: ("this field is required", "a.b").
    """
    text = str(exc)
    message, sep, where = text.rpartition(" - at `")
    if not sep:
        message, where = text, ""
    field = where.rstrip("`").removeprefix("$").removeprefix(".") or None
    if message.startswith("Object missing required field `"):
        name = message.split("`")[1]
        return "this field is required", f"{field}.{name}" if field else name
    return message, field
