"""The original MIME as the relay keeps it to send on: a submission server's few header edits.

Only the header block is touched, byte for byte everything else stays as the client sent it:
a ``Received`` field is put on top, ``Bcc`` is removed (each recipient gets the same bytes),
and ``Message-ID`` / ``Date`` are added when the client left them out (RFC 6409 §8).
"""

from __future__ import annotations

import email.utils
import logging
import re
import time

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^\x21-\x7e]")


_date: tuple[int, str] = (0, "")


def now_date() -> str:
    """RFC 5322 date of now, local time (formatted at most once a second)."""
    global _date
    second = int(time.time())
    if _date[0] != second:
        _date = (second, email.utils.formatdate(second, localtime=True))
    return _date[1]


def header_end(raw: bytes) -> int:
    """Where the header block ends (the index of the empty line), or len(raw) if it never does."""
    if raw.startswith((b"\r\n", b"\n")):
        return 0
    ends = [i + 1 for i in (raw.find(b"\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return min(ends) if ends else len(raw)


def _fields(head: bytes) -> list[bytes]:
    """The header fields, each with its continuation lines and line endings."""
    fields: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def ascii_token(text: str, limit: int = 255) -> str:
    """``text`` safe inside a header comment: printable ASCII, no spaces or parentheses."""
    return _UNSAFE.sub("?", text).replace("(", "?").replace(")", "?")[:limit] or "unknown"


def received_field(
    *,
    helo: str | None,
    client: str,
    hostname: str,
    protocol: str,
    smtp_id: str,
    tls: str | None,
    envelope_from: str,
) -> bytes:
    """A ``Received`` field (RFC 5321 §4.4, protocol names of RFC 3848)."""
    lines = [
        f"Received: from {ascii_token(helo or 'unknown')} ([{client}])",
        f"\tby {ascii_token(hostname)} (msggate) with {protocol}",
    ]
    if tls:
        lines.append(f"\t(using {ascii_token(tls)})")
    lines.append(f"\tid {smtp_id}")
    lines.append(f"\t(envelope-from <{ascii_token(envelope_from, 320) if envelope_from else ''}>);")
    lines.append(f"\t{now_date()}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def prepare(raw: bytes, received: bytes, *, message_id: str | None, date: bool) -> bytes:
    """``raw`` with ``received`` on top, without Bcc, with the Message-ID / Date given."""
    end = header_end(raw)
    kept = [f for f in _fields(raw[:end]) if f.split(b":", 1)[0].strip().lower() != b"bcc"]
    added = []
    if message_id:
        added.append(f"Message-ID: {message_id}\r\n".encode("ascii"))
    if date:
        added.append(f"Date: {now_date()}\r\n".encode("ascii"))
    if kept and not kept[-1].endswith(b"\n"):
        kept[-1] += b"\r\n"
    body: bytes | memoryview = memoryview(raw)[end:]  # joined below: not copied twice
    if end == len(raw):  # headers only: the header block still needs its empty line
        body = b"\r\n"
    return b"".join([received, *kept, *added, body])
