"""Alibaba Cloud RPC (signature v1) shared by the ``sms``, ``voice`` and ``outbound`` channels.

A library package, not a plugin (it has no entry point). Products build on these modules:

- :mod:`plugins.aliyun.signature` — the RPC v1 HMAC-SHA1 signature (docs/providers.md §4.2),
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
- :mod:`plugins.aliyun.channel` — :class:`~plugins.aliyun.channel.AliyunChannel`, the base of
  the channels (client, account config, signed calls, bare-number recipients), and
  :class:`~plugins.aliyun.channel.SingleCallChannel`, the send path of one call per delivery
  answered with the provider id (SendSms, SingleCallByTts).
- :mod:`plugins.aliyun.numbers` — mainland mobile and landline numbers: ``normalize`` turns
  ``+86 138-0013-8000`` into ``13800138000``; ``mobile_problem`` / ``phone_problem`` check it.
- :mod:`plugins.aliyun.params` — template variables as the JSON object of strings the
  communication APIs want (``TemplateParam``, ``TtsParam``), checked against a known
  template's ``${name}`` variables.
- :mod:`plugins.aliyun.receipts` — receipt pushes (HTTP batch push has no signature):
  ``report_route`` builds a product's route; ``verified_account`` checks the route's
  ``{account}``/``{token}`` against the account's secret ``receipt_token`` and
  ``receipt_ips``; receipts are recorded for that account only.
- :mod:`plugins.aliyun.fake` — :class:`~plugins.aliyun.fake.FakeRpcGateway`, the reusable core
  of a fake Aliyun product (§4.5): signature, timestamp window, nonce replay, AccessKey lookup,
  JSON/XML answers, :class:`~plugins.aliyun.fake.Fault` injection (by action and parameters);
  product fakes register their actions on it. Also :class:`~plugins.aliyun.fake.FlowWindows`
  (per-number flow control) and :class:`~plugins.aliyun.fake.ReportPusher` (receipt pushes
  with the provider's retry schedule).
- :mod:`plugins.aliyun.fake_product` — :class:`~plugins.aliyun.fake_product.FakeProduct`, the
  state and template-parameter checks the fake SMS and voice services share, and
  ``product_app`` to serve one.

Users: ``plugins.sms`` (dysmsapi), ``plugins.voice`` (dyvmsapi), ``plugins.outbound``.
"""
