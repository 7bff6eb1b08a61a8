"""Account forms generated from a channel's ``account_type`` (a msgspec Struct).

Every field of the Struct becomes an input: text, number, checkbox, a select for a Literal, a
text area for lists (one per line) and string maps (``KEY=value`` per line). Fields listed in
``secret_fields`` are write-only password inputs: never filled in, left empty to keep the
stored value (which the service refuses once a ``destination_fields`` field changes). Fields a
channel needs are shown first; optional ones fold under "more settings".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec
import msgspec.inspect as mi

from admin.forms import parse_json, parse_mapping
from admin.i18n import Translate
from gateway.accounts import MASK
from gateway.channel import Channel, secret_fields

# What the manual's form asks first, per built-in channel; other fields follow, optional ones
# under "more settings". A third party's channel shows its required fields first.
PRIMARY: dict[str, tuple[str, ...]] = {
    "email": ("from", "password", "host", "port", "tls", "username"),
    "wecom": ("corpid", "corpsecret", "agentid"),
    "wecom_robot": ("key",),
    "dingtalk": ("appkey", "appsecret", "agent_id"),
    "dingtalk_robot": ("access_token", "secret"),
    "welink": ("client_id", "client_secret", "msg_owner"),
    "sms": ("access_key_id", "access_key_secret", "sign_name"),
    "voice": ("access_key_id", "access_key_secret", "called_show_number"),
    "outbound": ("company_name", "access_key_id", "access_key_secret", "caller_number"),
}
# The field the account list shows as 发信地址 (sender address).
ADDRESS: dict[str, str] = {
    "email": "from",
    "wecom": "corpid",
    "dingtalk": "appkey",
    "welink": "client_id",
    "sms": "sign_name",
    "voice": "called_show_number",
    "outbound": "caller_number",
}
LONG_TEXT = 1000  # a string field longer than this gets a text area


@dataclass(frozen=True)
class FieldSpec:
    name: str  # the wire name, as the config stores it
    kind: str  # text | password | number | checkbox | select | textarea | lines | mapping | json
    required: bool
    nullable: bool
    secret: bool
    default: Any  # msgspec.NODEFAULT when there is none
    choices: tuple[str, ...] = ()
    maxlength: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    step: str = "1"
    primary: bool = False

    @property
    def has_default(self) -> bool:
        return self.default is not msgspec.NODEFAULT

    def label(self, t: Translate) -> str:
        key = f"fields.{self.name}"
        text = t(key)
        return self.name.replace("_", " ") if text == key else text

    def options(self, t: Translate) -> list[tuple[str, str]]:
        """(value, label) pairs of a select; a nullable field may be left at its default."""
        found = [("", t("common.default"))] if self.nullable else []
        for value in self.choices:
            key = f"choices.{self.name}.{value}"
            text = t(key)
            found.append((value, value if text == key else text))
        return found

    def hint(self, t: Translate) -> str:
        key = f"hints.{self.name}"
        text = t(key)
        return "" if text == key else text


def _unwrap(kind: mi.Type) -> tuple[mi.Type, bool]:
    if isinstance(kind, mi.UnionType):
        others = [k for k in kind.types if not isinstance(k, mi.NoneType)]
        if len(others) == 1 and len(others) < len(kind.types):
            return others[0], True
    return kind, False


def _default(f: mi.Field) -> Any:
    if f.default is not msgspec.NODEFAULT:
        return msgspec.to_builtins(f.default)
    if f.default_factory is not msgspec.NODEFAULT:
        return msgspec.to_builtins(f.default_factory())
    return msgspec.NODEFAULT


def field_specs(channel: Channel) -> list[FieldSpec]:
    """The form fields for ``channel``'s account type, primary ones first."""
    info = mi.type_info(channel.account_type)
    assert isinstance(info, mi.StructType)
    secrets = secret_fields(channel.account_type)
    primary = PRIMARY.get(channel.name, ())
    specs = []
    for f in info.fields:
        kind, nullable = _unwrap(f.type)
        name = f.encode_name
        secret = name in secrets
        extra: dict[str, Any] = {}
        if isinstance(kind, mi.StrType):
            long = kind.max_length is None and name.endswith("cert")
            long = long or (kind.max_length or 0) > LONG_TEXT
            form_kind = "password" if secret else ("textarea" if long else "text")
            extra["maxlength"] = kind.max_length
        elif isinstance(kind, mi.IntType):
            form_kind = "number"
            low = kind.ge if kind.ge is not None else (kind.gt + 1 if kind.gt is not None else None)
            high = (
                kind.le if kind.le is not None else (kind.lt - 1 if kind.lt is not None else None)
            )
            extra.update(minimum=low, maximum=high)
        elif isinstance(kind, mi.FloatType):
            form_kind = "number"
            extra.update(minimum=kind.ge, maximum=kind.le, step="any")
        elif isinstance(kind, mi.BoolType):
            form_kind = "checkbox"
        elif isinstance(kind, mi.LiteralType) and all(isinstance(v, str) for v in kind.values):
            form_kind = "select"
            extra["choices"] = tuple(kind.values)
        elif isinstance(kind, mi.ListType) and isinstance(kind.item_type, mi.StrType):
            form_kind = "lines"
        elif isinstance(kind, mi.DictType) and isinstance(kind.value_type, mi.StrType):
            form_kind = "mapping"
        else:
            form_kind = "json"
        specs.append(
            FieldSpec(
                name=name,
                kind=form_kind,
                required=f.required,
                nullable=nullable,
                secret=secret,
                default=_default(f),
                primary=f.required or name in primary,
                **extra,
            )
        )
    order = {name: i for i, name in enumerate(primary)}
    specs.sort(key=lambda s: (not s.primary, order.get(s.name, len(order))))
    return specs


def initial_values(specs: list[FieldSpec], config: dict[str, Any] | None) -> dict[str, str]:
    """Form values from a stored config (secrets never), or from the defaults."""
    values: dict[str, str] = {}
    for spec in specs:
        if spec.secret:
            continue
        value = config.get(spec.name) if config is not None and spec.name in config else None
        if value is None and config is None and spec.has_default:
            value = spec.default
        values[spec.name] = display(spec, value)
    return values


def display(spec: FieldSpec, value: Any) -> str:
    if value is None:
        return ""
    if spec.kind == "checkbox":
        return "on" if value else ""
    if spec.kind == "lines":
        return "\n".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if spec.kind == "mapping":
        if isinstance(value, dict):
            return "\n".join(f"{k}={v}" for k, v in value.items())
        return str(value)
    if spec.kind == "json":
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def decode(
    specs: list[FieldSpec], form: dict[str, str], editing: bool, t: Translate
) -> tuple[dict[str, Any], dict[str, str]]:
    """The config a form describes, and errors by field for what could not be read.

    Creating, an empty field is left out (its default applies; the service says what is
    missing). Editing, the whole config is given: an empty secret keeps the stored one (unless
    its "clear" box is ticked), an empty field goes back to its default.
    """
    config: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in specs:
        # browsers send a text area's line breaks as CRLF: keep the stored LF so an unchanged
        # PEM (a destination field) does not count as a change
        raw = form.get(spec.name, "").replace("\r\n", "\n")
        if spec.kind == "checkbox":
            config[spec.name] = raw == "on"
            continue
        if spec.secret:
            if editing and form.get(f"clear__{spec.name}") == "on" and spec.nullable:
                config[spec.name] = None
            elif raw.strip():
                try:
                    config[spec.name] = raw if spec.kind == "password" else _parse(spec, raw)
                except ValueError as exc:
                    errors[spec.name] = t(str(exc))
            elif editing:
                config[spec.name] = MASK  # the service keeps a masked secret as it is
            continue
        text = raw if spec.kind in ("textarea",) else raw.strip()
        if text == "" or (spec.kind == "textarea" and not text.strip()):
            if editing:
                if spec.nullable:
                    config[spec.name] = None
                elif spec.has_default:
                    config[spec.name] = spec.default
                else:
                    errors[spec.name] = t("errors.required")
            continue
        try:
            config[spec.name] = _parse(spec, text)
        except ValueError as exc:
            errors[spec.name] = t(str(exc))
    return config, errors


def _parse(spec: FieldSpec, text: str) -> Any:
    if spec.kind == "number":
        try:
            return int(text) if spec.step == "1" else float(text)
        except ValueError:
            raise ValueError("errors.number") from None
    if spec.kind == "lines":
        return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]
    if spec.kind == "mapping":
        return parse_mapping(text)
    if spec.kind == "json":
        return parse_json(text)
    return text


def address_of(channel_name: str, config: dict[str, Any]) -> str:
    """What the account list shows as the sender address (发信地址)."""
    field = ADDRESS.get(channel_name)
    value = config.get(field) if field else None
    if value in (None, "", MASK):
        return ""
    return str(value)
