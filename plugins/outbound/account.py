"""The outbound-call account (智能外呼账户): company name, AccessKey pair, caller number."""

from __future__ import annotations

import logging
import re
from typing import Annotated, ClassVar, Literal

from msgspec import Meta

from plugins.aliyun.account import AliyunAccount, InvalidAliyunAccount

log = logging.getLogger(__name__)

ENDPOINTS = {"dyvms": "https://dyvmsapi.aliyuncs.com", "aiccs": "https://aiccs.aliyuncs.com"}
CALLER = re.compile(r"\d{5,20}")
MAX_CALLERS = 100  # BatchRobotSmartCall: CalledShowNumber takes 1-100 numbers


class OutboundAccount(AliyunAccount, kw_only=True, forbid_unknown_fields=True):
    """An Alibaba Cloud account for robot calls.

    ``company_name``: the company name exactly as registered on the Voice Service
    qualification page (``CorpName``). ``caller_number``: the purchased number the callee sees
    (``CalledShowNumber``; dyvms takes several, comma-separated; aiccs one). ``api``: ``dyvms``
    for BatchRobotSmartCall (default) or ``aiccs`` for the successor RobotCall (see the package
    docstring). ``endpoint`` defaults to the chosen API's public endpoint.
    """

    secret_fields: ClassVar[frozenset[str]] = AliyunAccount.secret_fields
    # ``api`` picks the public endpoint when none is given
    destination_fields: ClassVar[frozenset[str]] = AliyunAccount.destination_fields | {"api"}

    company_name: Annotated[str, Meta(min_length=1, max_length=128)]
    caller_number: Annotated[str, Meta(min_length=5, max_length=2100)]
    api: Literal["dyvms", "aiccs"] = "dyvms"

    def check(self) -> None:
        super().check()
        if self.company_name != self.company_name.strip():
            raise InvalidAliyunAccount(
                "the company name has spaces around it (it must match the qualification page)",
                "company_name",
            )
        numbers = self.caller_number.split(",")
        if not all(CALLER.fullmatch(n) for n in numbers):
            raise InvalidAliyunAccount(
                "the caller number must be digits only (e.g. 057100000000), several separated"
                " by commas",
                "caller_number",
            )
        if len(numbers) > MAX_CALLERS:
            raise InvalidAliyunAccount(f"at most {MAX_CALLERS} caller numbers", "caller_number")
        if self.api == "aiccs" and len(numbers) > 1:
            raise InvalidAliyunAccount("RobotCall (aiccs) takes one caller number", "caller_number")

    @property
    def url(self) -> str:
        """The endpoint to call: the configured one or the chosen API's public endpoint."""
        return self.base_url(ENDPOINTS[self.api])
