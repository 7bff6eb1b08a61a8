"""The built-in e-mail channel: SMTP submission through aiosmtplib (see ``plugin``)."""
