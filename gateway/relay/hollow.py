"""A large message without its large attachments, for parsing: what ``mime.parse`` reads of it.

The standard ``email`` parser holds a message several times over (as text, as a list of its
lines, each part joined again, then decoded): about eight times its size, most of it for
attachments of which the relay only needs the name, type and size. ``hollow`` walks the MIME
structure on the bytes and leaves out each large leaf body that is not text, putting its
decoded size in a header (``SIZE_HEADER``) that ``mime.parse`` reads instead. Text parts,
small parts and anything it does not understand stay byte for byte, so the parse gives what
it would have given for the whole message. Only the parse sees this: the message stored and
sent is the one received.
"""

from __future__ import annotations

import binascii
import email.parser
import email.policy
from email.message import Message

SIZE_HEADER = "X-Msggate-Hollowed-Size"
MIN_BODY = 64 * 1024  # bytes: smaller bodies are kept
MAX_DEPTH = 20  # nested multiparts followed; deeper ones are kept whole

_headers = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def _header_end(raw: bytes, start: int, end: int) -> int:
    """Where the part's header block ends (the empty line), or ``end``."""
    if raw.startswith((b"\r\n", b"\n"), start, end):
        return start
    found = [i + 1 for i in (raw.find(b"\n\r\n", start, end), raw.find(b"\n\n", start, end))]
    found = [i for i in found if i > 0]
    return min(found) if found else end


def _body_start(raw: bytes, head_end: int, end: int) -> int:
    if raw.startswith(b"\r\n", head_end, end):
        return head_end + 2
    return head_end + 1 if head_end < end else end


def _decoded_size(raw: bytes, start: int, end: int, encoding: str) -> int:
    if encoding == "base64":
        chars = end - start - sum(raw.count(c, start, end) for c in (b"\r", b"\n", b" ", b"\t"))
        return chars * 3 // 4 - raw.count(b"=", start, end)
    if encoding == "quoted-printable":
        return len(binascii.a2b_qp(raw[start:end]))
    return end - start


def _hollowable(headers: Message) -> bool:
    """Not a multipart, and not what ``mime.parse`` would read as the text or HTML body."""
    ctype = headers.get_content_type()
    if ctype.startswith("multipart/"):
        return False
    if ctype not in ("text/plain", "text/html"):
        return True
    return bool(headers.get_filename()) or headers.get_content_disposition() == "attachment"


def _parts(raw: bytes, start: int, end: int, boundary: bytes) -> list[tuple[int, int]] | None:
    """Each part's range between the delimiter lines, or None if the close delimiter is missing."""
    delimiter = b"--" + boundary
    parts: list[tuple[int, int]] = []
    part_start = -1
    pos = start
    while True:
        at = raw.find(delimiter, pos, end)
        if at < 0:
            return None
        pos = at + len(delimiter)
        if at != start and raw[at - 1 : at] != b"\n":
            continue  # not at the start of a line
        rest = raw[pos : pos + 2]
        line_end = raw.find(b"\n", pos, end)
        tail = raw[pos + (2 if rest == b"--" else 0) : line_end if line_end >= 0 else end]
        if tail.strip():
            continue  # a longer boundary that starts with this one
        if part_start >= 0:
            crlf = 2 if raw[at - 2 : at] == b"\r\n" else 1
            parts.append((part_start, at - crlf))
        if rest == b"--":
            return parts
        if line_end < 0:
            return None
        part_start = pos = line_end + 1


def _walk(raw: bytes, start: int, end: int, out: list[bytes | memoryview], depth: int) -> None:
    view = memoryview(raw)
    head_end = _header_end(raw, start, end)
    headers = _headers.parsebytes(raw[start:head_end])
    body = _body_start(raw, head_end, end)
    boundary = headers.get_boundary()
    if headers.get_content_maintype() == "multipart" and boundary and depth < MAX_DEPTH:
        parts = _parts(raw, body, end, boundary.encode("ascii", "surrogateescape"))
        if parts is not None:
            pos = start
            for part_start, part_end in parts:
                out.append(view[pos:part_start])
                _walk(raw, part_start, part_end, out, depth + 1)
                pos = part_end
            out.append(view[pos:end])
            return
    if end - body >= MIN_BODY and _hollowable(headers):
        encoding = str(headers.get("Content-Transfer-Encoding", "")).strip().lower()
        size = _decoded_size(raw, body, end, encoding)
        if headers.get_content_maintype() == "message":  # counted as mime.parse does: the part
            size = end - start - raw.count(b"\r\n", start, end)  # with its header, LF ends
        newline = b"\r\n" if raw[head_end : head_end + 2] == b"\r\n" else b"\n"
        out.append(view[start:head_end])
        out.append(f"{SIZE_HEADER}: {size}".encode() + newline + newline)
        return
    out.append(view[start:end])


def hollow(raw: bytes) -> bytes:
    """``raw`` with each large leaf body that is not the text left out (its decoded size in a
    header); ``raw`` itself if anything in it is not understood."""
    out: list[bytes | memoryview] = []
    try:
        _walk(raw, 0, len(raw), out, 0)
    except Exception:  # malformed headers or parameters: the parser can raise nearly anything
        return raw
    return b"".join(out)
