"""The outbound receipt route: Alibaba Cloud pushes call results here.

Configure ``https://<msggate>/callbacks/outbound/aliyun/<account name>/<receipt_token>`` as the
HTTP batch-push URL of the call-record message (VoiceReport of the SmartCall category for
dyvms, RobotCallReportAiccs for aiccs). The pushes are not signed; the caller is checked by
:func:`plugins.aliyun.receipts.verified_account` (the account's secret ``receipt_token``, its
optional ``receipt_ips``), and a receipt only changes a delivery of this channel and account
whose provider id it names. Without receipts configured, results stay "sent"; the alternative
would be to poll ``QueryCallDetailByTaskId`` (dyvms) or ``ListRobotCallDialog`` (aiccs) per
call, not done here.
"""

from __future__ import annotations

import logging

from gateway.callbacks import CallbackRoute
from plugins.aliyun.receipts import report_route
from plugins.outbound.account import OutboundAccount
from plugins.outbound.results import receipts_from

log = logging.getLogger(__name__)

CHANNEL = "outbound"


def routes() -> list[CallbackRoute]:
    return [report_route(CHANNEL, OutboundAccount, receipts_from, "call reports")]
