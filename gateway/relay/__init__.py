"""The SMTP relay: legacy applications hand msggate their mail over SMTP.

One module per job:

- ``listener``: the aiosmtpd server on the gateway's event loop (an aiohttp cleanup context);
- ``session``: aiosmtpd's protocol with the data timeout, reply texts and per-session state;
- ``limits``: connections per address and the total cap below the open-file limit;
- ``validate``: input refused at the SMTP edge (what the database cannot store, huge headers);
- ``handler``: the SMTP commands (who may relay, where recipients go, 250 after commit);
- ``auth``: AUTH PLAIN/LOGIN checked off the loop, guessing limited by ``gateway.throttle``;
- ``users``: relay credentials (argon2); ``access``: the IP allow-list shared with the API;
- ``route``, ``routing`` and ``table``: routes, the built-in routing plugin, the routing table;
- ``actions``: the seam for tiered push actions;
- ``mime`` and ``rawmail``: MIME to text, and the original MIME as it is sent on;
- ``submit``: a transaction into ``MessageService.accept``;
- ``outgoing``: the original MIME for the e-mail channel (the dispatcher's seam);
- ``dsn`` and ``bounces``: delivery status notifications for failed relayed mail;
- ``tls``: the STARTTLS certificate; ``store``: the relay's SQL; ``services``: the wiring.
"""
