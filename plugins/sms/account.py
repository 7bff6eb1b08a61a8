"""The SMS account: an Alibaba Cloud AccessKey, the approved signature, known templates."""

from __future__ import annotations

import logging
from typing import Annotated, ClassVar

import msgspec
from msgspec import Meta

from plugins.aliyun.account import AliyunAccount, InvalidAliyunAccount

log = logging.getLogger(__name__)

SMS_ENDPOINT = "https://dysmsapi.aliyuncs.com"
SIGN_NAME_MAX = 12  # characters (CreateSmsSign: 2-12, no brackets, symbols or spaces)


class SmsAccount(AliyunAccount, kw_only=True, forbid_unknown_fields=True):
    """Alibaba Cloud SMS (dysmsapi 2017-05-25).

    ``sign_name``: the approved signature (签名, 2-12 characters) every message carries.
    ``templates``: optional texts of the approved templates by TemplateCode
    (``{"SMS_1": "您的验证码为${code}"}``); a known template lets the channel check variables,
    the 500-character limit and count billed segments before sending.
    ``verification_templates``: the TemplateCodes approved as verification-code templates
    (验证码), which fall under stricter per-number limits (1/minute, 5/hour, 10/day) than
    notifications (50/day).
    """

    secret_fields: ClassVar[frozenset[str]] = AliyunAccount.secret_fields
    destination_fields: ClassVar[frozenset[str]] = AliyunAccount.destination_fields

    sign_name: Annotated[str, Meta(min_length=2, max_length=SIGN_NAME_MAX)]
    templates: dict[str, str] = msgspec.field(default_factory=dict)
    verification_templates: list[str] = msgspec.field(default_factory=list)

    def check(self) -> None:
        super().check()
        if self.sign_name != self.sign_name.strip() or "【" in self.sign_name:
            raise InvalidAliyunAccount(
                "give the signature without spaces or 【】 (the platform adds the brackets)",
                "sign_name",
            )
        for code, text in self.templates.items():
            if not code.strip() or not text.strip():
                raise InvalidAliyunAccount(
                    f"template {code!r} needs a code and a text", "templates"
                )
