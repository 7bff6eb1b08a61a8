"""The built-in AI outbound-call channel (智能外呼): Alibaba Cloud robot calls (see ``plugin``).

Which API (docs/providers.md §7.1). The manual's outbound account (智能外呼账户) asks for the
company name, AccessKey ID, AccessKey Secret and caller number, and an outbound task picks one
script (话术). That is exactly Voice Service ``BatchRobotSmartCall`` (dyvmsapi 2017-05-25):
``CorpName``, ``CalledShowNumber``, ``DialogId``, signed with the AccessKey. So it is the
default (``api: "dyvms"``). Alibaba Cloud closed that robot feature to new customers after
2023-12-31 and sends them to the Intelligent Contact Center, whose ``RobotCall`` (aiccs
2019-10-15: ``CalledShowNumber``, ``CalledNumber``, ``RobotId``, ``Params``) is the successor:
an account with ``api: "aiccs"`` uses it, behind the same channel, options and receipts.

One delivery is one call to one number: with dyvms a one-number task (provider id = its
``TaskId``), with aiccs one call (provider id = the call id in ``Data``). Call results come back
as receipts on ``/callbacks/outbound/aliyun/<account>/<receipt_token>`` (see ``receipts``).
"""
