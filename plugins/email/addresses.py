"""Parsing one RFC 5322 mailbox ("Name <user@domain>" or a bare address) into an Address."""

from __future__ import annotations

import email.policy
import functools
import logging
import re
from email.headerregistry import Address

log = logging.getLogger(__name__)

_header_factory = email.policy.default.header_factory

# A bare ASCII address, dot-atom local part @ LDH domain with a dot: parse_mailbox accepts all
# of these unchanged, some 150 times slower (60 us), so callers check this first.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
PLAIN_ADDRESS = rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})+"
is_plain_address = re.compile(PLAIN_ADDRESS).fullmatch


@functools.lru_cache(maxsize=4096)  # the stdlib parser is slow; the same addresses recur
def parse_mailbox(text: str) -> Address:
    """The single mailbox in ``text``; raise ValueError if it is not exactly one valid address.

    A non-ASCII display name is fine (it is RFC 2047-encoded on the wire); a non-ASCII domain is
    converted to IDNA; a non-ASCII local part is refused, since it would need SMTPUTF8.
    """
    if not text or "\r" in text or "\n" in text:
        raise ValueError(f"not an e-mail address: {text!r}")
    try:  # the stdlib parser can raise almost anything on garbage input
        header = _header_factory("To", text)
        addresses = header.addresses
        defects = header.defects
    except Exception as exc:
        raise ValueError(f"not an e-mail address: {text!r}") from exc
    if len(addresses) != 1 or defects:
        raise ValueError(f"not a single e-mail address: {text!r}")
    address = addresses[0]
    if not address.username or not address.domain:
        raise ValueError(f"not an e-mail address (expected user@domain): {text!r}")
    if not address.username.isascii():
        raise ValueError(f"non-ASCII local part needs SMTPUTF8, not supported: {text!r}")
    domain = address.domain
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"invalid domain in e-mail address: {text!r}") from exc
    return Address(display_name=address.display_name, username=address.username, domain=domain)
