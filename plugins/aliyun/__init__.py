"""Alibaba Cloud RPC (signature v1) shared by the ``sms``, ``voice`` and ``outbound`` channels.

A library package, not a plugin (it has no entry point). Products build on four modules:

- :mod:`plugins.aliyun.signature` — the RPC v1 HMAC-SHA1 signature (specs/channels.md §4.2),
  checked against the §4.3 test vectors: :func:`~plugins.aliyun.signature.sign`,
  :func:`~plugins.aliyun.signature.signed_params`.
- :mod:`plugins.aliyun.client` — :class:`~plugins.aliyun.client.AliyunClient`, one aiohttp
  session per channel; ``await client.call(endpoint, action, version, params, access_key_id,
  access_key_secret)`` signs, POSTs through :func:`gateway.httpcall.call_json`, re-signs once on
  a stale timestamp or a reused nonce, and returns a :class:`~plugins.aliyun.client.Reply` (the
  product answered: ``Code`` ``OK`` or a business code) or an already classified
  ``Retry``/``Failed`` (transport trouble or a gateway-level error, §4.4).
- :mod:`plugins.aliyun.errors` — classification: :data:`~plugins.aliyun.errors.GATEWAY_RULES`
  (§4.4), :data:`~plugins.aliyun.errors.COMMUNICATION_RULES` (the ``isv.*``/``isp.*`` business
  codes SMS and voice share, §5.3/§6.3) and :func:`~plugins.aliyun.errors.classify`, which
  turns a code into ``Retry``/``Failed`` with the provider's code and message.
  :func:`~plugins.aliyun.errors.flow_control` handles ``isv.BUSINESS_LIMIT_CONTROL`` (wait for
  the next natural minute/hour, fail on the daily window); :func:`~plugins.aliyun.errors.
  safe_message` cuts the request echo out of ``SignatureDoesNotMatch``.
- :mod:`plugins.aliyun.account` — :class:`~plugins.aliyun.account.AliyunAccount`, the base
  account Struct products subclass (``class SmsAccount(AliyunAccount, kw_only=True)``):
  ``access_key_id``, ``access_key_secret`` (secret), ``region``, ``endpoint``,
  ``receipt_token`` (secret), ``receipt_ips``, ``timeout``; and ``account_from``.
- :mod:`plugins.aliyun.params` — template variables as the JSON object of strings the
  communication APIs want (``TemplateParam``, ``TtsParam``).
- :mod:`plugins.aliyun.receipts` — receipt pushes (HTTP batch push has no signature):
  ``verified_account`` checks the route's ``{account}``/``{token}`` against the account's
  secret ``receipt_token`` and ``receipt_ips``; ``json_array``, ``accepted``, ``refused``.
- :mod:`plugins.aliyun.fake` — :class:`~plugins.aliyun.fake.FakeRpcGateway`, the reusable core
  of a fake Aliyun product (§4.5): signature, timestamp window, nonce replay, AccessKey lookup,
  JSON/XML answers, :class:`~plugins.aliyun.fake.Fault` injection (by action and parameters);
  product fakes register their actions on it. Also :class:`~plugins.aliyun.fake.FlowWindows`
  (per-number flow control) and :class:`~plugins.aliyun.fake.ReportPusher` (receipt pushes
  with the provider's retry schedule).

Users: ``plugins.sms`` (dysmsapi), ``plugins.voice`` (dyvmsapi), ``plugins.outbound``.
"""
