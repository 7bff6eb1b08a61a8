"""The Alibaba Cloud RPC signature, version 1.0 with HMAC-SHA1 (docs/providers.md §4.2).

Implemented from the "Signature mechanism" pages shared by dysmsapi, dyvmsapi and aiccs
(help.aliyun.com/document_detail/130769, API version independent), checked against the test
vectors of §4.3 in ``tests/test_aliyun_signature.py``. The request path is always ``/`` in the
string to sign, whatever path the endpoint has (a fake mounted at ``/aliyun-sms`` included).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import uuid
from collections.abc import Mapping
from urllib.parse import quote

log = logging.getLogger(__name__)

SIGNATURE_METHOD = "HMAC-SHA1"
SIGNATURE_VERSION = "1.0"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
COMMON_PARAMS = (
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
)


def percent_encode(value: str) -> str:
    """RFC 3986 encoding of the UTF-8 bytes: only ``A-Z a-z 0-9 - _ . ~`` stay as they are."""
    return quote(value, safe="~")


def canonical_query(params: Mapping[str, str]) -> str:
    """Parameters sorted by name (byte-wise), each ``name=value`` percent-encoded, joined by &.

    ``Signature`` itself is never part of it.
    """
    items = sorted((k, v) for k, v in params.items() if k != "Signature")
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in items)


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """``METHOD&%2F&`` + the percent-encoded canonical query."""
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def sign(method: str, params: Mapping[str, str], access_key_secret: str) -> str:
    """Base64 of HMAC-SHA1 over the string to sign, keyed with ``secret + "&"``."""
    key = (access_key_secret + "&").encode()
    digest = hmac.new(key, string_to_sign(method, params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def timestamp(at: float) -> str:
    """A Unix time as the ``Timestamp`` parameter wants it: UTC, ISO 8601, whole seconds."""
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime(TIMESTAMP_FORMAT)


def new_nonce() -> str:
    """A fresh ``SignatureNonce``."""
    return str(uuid.uuid4())


def signed_params(
    method: str,
    action: str,
    version: str,
    params: Mapping[str, str],
    access_key_id: str,
    access_key_secret: str,
    *,
    at: float,
    nonce: str,
    region_id: str | None = None,
    response_format: str = "JSON",
) -> dict[str, str]:
    """The complete parameter set of one request: common parameters, ``params``, Signature.

    ``params`` are the action's own parameters (values already strings); they may not override
    the common ones.
    """
    common = {
        "Action": action,
        "Version": version,
        "Format": response_format,
        "AccessKeyId": access_key_id,
        "SignatureMethod": SIGNATURE_METHOD,
        "SignatureVersion": SIGNATURE_VERSION,
        "SignatureNonce": nonce,
        "Timestamp": timestamp(at),
    }
    if region_id:
        common["RegionId"] = region_id
    clash = sorted(set(common) & set(params) | ({"Signature"} & set(params)))
    if clash:
        raise ValueError(f"parameters {clash} are set by the signer, not by the caller")
    full = {**common, **params}
    full["Signature"] = sign(method, full, access_key_secret)
    return full
