"""Per-message options of the outbound channel."""

from __future__ import annotations

import logging
from typing import Annotated

import msgspec
from msgspec import Meta

log = logging.getLogger(__name__)


class OutboundOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``options`` of an outbound-call message (all optional).

    - ``task_name``: the task name shown in the console (dyvms ``TaskName``, at most 30
      characters; default ``msggate-`` and the delivery id's tail);
    - ``early_media_asr``: detect the number's state from early media (``EarlyMediaAsr``,
      billed by Alibaba Cloud);
    - ``record``: record the call (aiccs ``RecordFlag``; dyvms records per its console).
    """

    task_name: Annotated[str, Meta(min_length=1, max_length=30)] | None = None
    early_media_asr: bool = False
    record: bool = False
