"""From a MIME message to what a channel sends: subject, text, HTML, and the attachments.

Parsed with the standard ``email`` package (policy ``default``). Legacy Chinese systems label
GBK text as ``gb2312`` (a subset: GBK-only characters would be lost), split multi-byte
characters across RFC 2047 encoded words, and put raw 8-bit GBK into headers; so text is decoded
here with GB 18030 for the whole GB family, encoded words are joined before decoding, and
unlabelled 8-bit text is tried as UTF-8, then GB 18030.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email.parser
import email.policy
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage

from gateway.relay.hollow import SIZE_HEADER, hollow

log = logging.getLogger(__name__)

# Labels whose real-world text is wider than the label says (WHATWG does the same).
_WIDER = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "euc-cn": "gb18030",
    "csgb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "chinese": "gb18030",
    "big5": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "us-ascii": "ascii",
}
_FALLBACKS = ("utf-8", "gb18030")

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")

_parser = email.parser.BytesParser(policy=email.policy.default)
HOLLOW_FROM = 1024 * 1024  # bytes: larger messages are parsed without their large attachments

MAX_DEPTH = 40  # MIME parts nested deeper are refused: the parser recurses once per level
# The standard parser's time grows with the parts (about a millisecond each) and with the square
# of their nesting: a small message of thousands of parts, or of hundreds of nested ones, would
# hold the CPU for seconds. These are counted first (cheaply) and refused; real mail has a few.
MAX_DELIMITERS = 2000  # lines that start with "--": an upper bound on the parts
MAX_BOUNDARIES = 100  # "boundary" anywhere: an upper bound on the multipart sections
MANY_PARTS = 20  # more than this: parse off the event loop whatever the size
_CHUNK = 1 << 20


class Unreadable(Exception):
    """The message's MIME structure cannot be read; the text says why."""


def codec_for(charset: str | None) -> str | None:
    """The Python codec for a MIME charset label, or None if unknown."""
    if not charset:
        return None
    label = charset.strip().strip("\"'").lower()
    label = _WIDER.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text from ``data``: its charset if that fits, else UTF-8, else GB 18030, else replaced."""
    codec = codec_for(charset)
    for name in (codec, *_FALLBACKS) if codec else _FALLBACKS:
        try:
            return data.decode(name)
        except UnicodeDecodeError:
            continue
    return data.decode(codec or "utf-8", errors="replace")


def _word_bytes(encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "bB":
            return base64.b64decode(text + "=" * (-len(text) % 4))
        return binascii.a2b_qp(text.encode("ascii"), header=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def decode_header_text(value: str) -> str:
    """A header's text: unfolded, RFC 2047 words decoded (adjacent ones joined), 8-bit decoded."""
    if not value.isascii():  # raw 8-bit bytes, kept by the parser as surrogate escapes
        value = decode_bytes(value.encode("utf-8", "surrogateescape"), None)
    value = _FOLD.sub("", value)
    out: list[str] = []
    pending: tuple[str, bytearray] | None = None
    pos = 0

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            out.append(decode_bytes(bytes(pending[1]), pending[0]))
            pending = None

    for match in _ENCODED_WORD.finditer(value):
        between = value[pos : match.start()]
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:  # not decodable: keep it as written
            flush()
            out.append(between + match.group(0))
            pos = match.end()
            continue
        if pending is None or between.strip():
            flush()
            out.append(between)
        charset = match.group(1).split("*", 1)[0].lower()  # RFC 2231 language suffix
        if pending is not None and pending[0] == charset:
            pending[1].extend(data)  # a character split across two words stays whole
        else:
            flush()
            pending = (charset, bytearray(data))
        pos = match.end()
    flush()
    out.append(value[pos:])
    return "".join(out).strip()


@dataclass(frozen=True, slots=True)
class Attachment:
    """An attachment (or a forwarded message): what it was called, its type and size."""

    filename: str | None
    content_type: str
    size: int


@dataclass(slots=True)
class Content:
    """What a message says, decoded."""

    subject: str | None = None
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    message_id: str | None = None
    from_: str | None = None
    date: str | None = None
    to: str | None = None


def raw_header(message: EmailMessage, name: str) -> str | None:
    """The first header ``name`` as written (not decoded), or None."""
    wanted = name.lower()
    for key, value in message.raw_items():
        if key.lower() == wanted:
            return str(value)
    return None


def _leaves(part: EmailMessage, depth: int = 0) -> Iterator[EmailMessage]:
    """Single parts in order; a forwarded message (message/rfc822) counts as one."""
    if part.get_content_type() != "message/rfc822" and part.is_multipart():
        if depth >= MAX_DEPTH:
            raise Unreadable(f"MIME parts are nested more than {MAX_DEPTH} levels deep")
        for sub in part.iter_parts():
            yield from _leaves(sub, depth + 1)  # type: ignore[arg-type]
    else:
        yield part


def _payload(part: EmailMessage) -> bytes:
    if part.is_multipart():  # a forwarded message: its bytes as sent
        return part.as_bytes()
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _filename(part: EmailMessage) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # malformed parameters: the parser can raise nearly anything
        return None
    if not name:
        return None
    return decode_header_text(name) if ("=?" in name or not name.isascii()) else name


def _count_folded(raw: bytes, word: bytes) -> int:
    """Occurrences of lower-case ``word`` in ``raw`` in any case, a megabyte at a time (so that
    a thread doing this lets the event loop run between chunks)."""
    tail = len(word) - 1
    return sum(raw[i : i + _CHUNK + tail].lower().count(word) for i in range(0, len(raw), _CHUNK))


def count_parts(raw: bytes) -> int:
    """An upper bound on the MIME parts of ``raw`` (its lines that start with "--"), counted
    without parsing; Unreadable if there are too many parts or multipart sections to parse."""
    bound = raw.count(b"\n--") + raw.startswith(b"--")
    if bound > MAX_DELIMITERS:
        raise Unreadable(f"more than {MAX_DELIMITERS} lines that could start a MIME part")
    if bound > 1 and _count_folded(raw, b"boundary") > MAX_BOUNDARIES:
        raise Unreadable(f"more than {MAX_BOUNDARIES} multipart sections")
    return bound


def _size(part: EmailMessage) -> int:
    hollowed = part.get(SIZE_HEADER)
    return int(hollowed) if hollowed and str(hollowed).isdigit() else len(_payload(part))


def parse(raw: bytes) -> Content:
    """Decode ``raw``: subject, the first text/plain and text/html body parts, attachments.

    Raises Unreadable for a structure too deep or too wide to walk."""
    count_parts(raw)
    if len(raw) > HOLLOW_FROM:
        raw = hollow(raw)
    try:
        message = _parser.parsebytes(raw)
    except RecursionError:  # the standard parser recurses once per nested multipart
        raise Unreadable("MIME parts are nested too deeply") from None
    assert isinstance(message, EmailMessage)
    content = Content()
    headers: dict[str, str] = {}
    for key, value in message.raw_items():  # as written: decoded here, not by the policy
        headers.setdefault(key.lower(), str(value))
    for name, attribute in (("subject", "subject"), ("from", "from_"), ("to", "to")):
        if name in headers:
            setattr(content, attribute, decode_header_text(headers[name]))
    for name, attribute in (("message-id", "message_id"), ("date", "date")):
        if name in headers:
            value = headers[name]
            if not value.isascii():  # raw 8-bit bytes as surrogate escapes: decode them too
                value = decode_bytes(value.encode("utf-8", "surrogateescape"), None)
            setattr(content, attribute, _FOLD.sub("", value).strip() or None)
    for part in _leaves(message):
        ctype = part.get_content_type()
        filename = _filename(part)
        body = ctype in ("text/plain", "text/html") and not filename
        if body and part.get_content_disposition() != "attachment":
            attribute = "text" if ctype == "text/plain" else "html"
            if getattr(content, attribute) is None:
                text = decode_bytes(_payload(part), part.get_content_charset())
                setattr(content, attribute, text.replace("\r\n", "\n"))
                continue
        content.attachments.append(Attachment(filename, ctype, _size(part)))
    return content
