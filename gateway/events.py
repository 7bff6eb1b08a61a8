"""Delivery events: the timeline of one delivery, as stored and as shown to observers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec


class DeliveryEvent(msgspec.Struct, frozen=True):
    """Something that happened to a delivery: ``kind`` plus free-form ``detail``."""

    delivery_id: str
    message_id: str
    kind: str
    at: dt.datetime
    detail: dict[str, Any] = {}
