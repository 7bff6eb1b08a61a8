"""The SMTP relay: legacy applications hand msggate their mail over SMTP.

One module per job: ``listener`` (the aiosmtpd server on the gateway's loop), ``session``
(aiosmtpd's protocol with msggate's limits and replies), ``handler`` (the SMTP commands),
``auth`` and ``throttle`` (AUTH and slowing down guessers), ``access`` (the IP allow-list
shared with the HTTP API), ``users`` (relay credentials), ``route`` and ``routing`` (where an
address goes), ``table`` (the routing table file), ``mime`` (MIME to text), ``submit`` (into
``MessageService.accept``), ``dsn`` and ``bounces`` (delivery status notifications), ``tls``,
``outgoing`` (the original MIME for the e-mail channel), ``actions`` (the tiered-action seam),
``store`` (its SQL) and ``services`` (all of it wired together).
"""
