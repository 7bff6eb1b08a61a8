"""What the relay refuses at the SMTP edge, so that bad input gets a definite 5xx answer.

PostgreSQL cannot store a NUL character in text (nor ``\\u0000`` in JSON), and a string holding
bytes that are not UTF-8 (kept by aiosmtpd and the ``email`` parser as surrogate escapes)
cannot even be sent to it. Such input can never be accepted, so it is refused here with a 5xx
naming what is wrong, before it reaches the shared group commit where it would fail the batch
of other clients (and earn a 451 that makes the client retry forever). Replies never echo the
offending bytes.
"""

from __future__ import annotations

import re

from gateway.relay.rawmail import header_end

# A header block larger than this is refused (552): real mail has a few kilobytes of header.
MAX_HEADER_BYTES = 256 * 1024

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# C0 controls and DEL: never part of a domain or a mailbox (RFC 5321 4.1.2), and a bare CR in a
# HELO name or an address could start a line in a header or a command sent on. A tab is let
# through: some clients separate parameters with one, and it harms nothing.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")

_CHECKED = frozenset({"HELO", "EHLO", "MAIL", "RCPT", "VRFY"})

BAD_HELO = "501 5.5.2 {command} name contains {what}; send a domain name or an address literal"
BAD_SENDER = "553 5.1.7 Sender address contains {what}"
BAD_RECIPIENT = "553 5.1.3 Recipient address contains {what}"
HEADER_TOO_BIG = f"552 5.3.4 Message header too big: at most {MAX_HEADER_BYTES} bytes"
BAD_CONTENT = "554 5.6.0 Message refused: {reason}"


class Refusal(Exception):
    """The message can never be accepted; ``reply`` is the SMTP reply that says why."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def unstorable(text: str) -> str | None:
    """Why the database cannot store ``text`` (a NUL, bytes that are not UTF-8), else None."""
    match = _UNSTORABLE.search(text)
    if match is None:
        return None
    return "a NUL character" if match.group() == "\x00" else "bytes that are not UTF-8"


def _control(text: str) -> str | None:
    match = _CONTROL.search(text)
    if match is None:
        return None
    char = match.group()
    if char == "\x00":
        return "a NUL character"
    if "\ud800" <= char <= "\udfff":
        return "bytes that are not UTF-8"
    return f"a control character (0x{ord(char):02X})"


def command_refusal(command: str, arg: str | None) -> str | None:
    """The reply refusing ``arg`` of a HELO, EHLO, MAIL, RCPT or VRFY command, else None."""
    if not arg or command not in _CHECKED:
        return None
    what = _control(arg)
    if what is None:
        return None
    if command in ("HELO", "EHLO"):
        return BAD_HELO.format(command=command, what=what)
    if command == "MAIL":
        return BAD_SENDER.format(what=what)
    return BAD_RECIPIENT.format(what=what)


def safe_reply(text: str) -> str:
    """``text`` fit to send as one reply line: no control characters, valid UTF-8."""
    return _CONTROL.sub("?", text) if _CONTROL.search(text) else text


def check_header_size(raw: bytes) -> None:
    """Raise Refusal if the header block of ``raw`` is over ``MAX_HEADER_BYTES``."""
    if header_end(raw[: MAX_HEADER_BYTES + 4]) > MAX_HEADER_BYTES:
        raise Refusal(HEADER_TOO_BIG)


def check_headers(fields: dict[str, str | None]) -> None:
    """Raise Refusal if a decoded header (``{"Subject": text, ...}``) cannot be stored."""
    for name, value in fields.items():
        what = unstorable(value) if value else None
        if what:
            raise Refusal(BAD_CONTENT.format(reason=f"the {name} header contains {what}"))


def check_body(channel: str, **parts: str | None) -> None:
    """Raise Refusal if a body part sent by ``channel`` holds text it cannot carry or store."""
    for name, value in parts.items():
        what = unstorable(value) if value else None
        if what:
            raise Refusal(
                BAD_CONTENT.format(
                    reason=f"the {name} body contains {what}: {channel} cannot send it"
                )
            )


def storable(text: str | None) -> str | None:
    """``text`` with NULs and undecodable bytes replaced by U+FFFD, for copies kept as records."""
    if text is None or not _UNSTORABLE.search(text):
        return text
    return _UNSTORABLE.sub("\ufffd", text)
