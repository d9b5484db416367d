"""Tolerant RFC 5322 header parsing shared by every mail connector.

compat32 with `getaddresses` and `decode_header` is several times faster than
`email.policy.default` on real archives (bench/ingest.py), and we only need a few fields.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.errors import MessageError
from email.header import decode_header, make_header
from email.parser import HeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from typing import Literal, NamedTuple

from connectors.records import Address, Channel, MessageHeaders, Skipped

HEADER_FIELDS: tuple[str, ...] = (
    "Message-ID", "Date", "From", "To", "Cc", "Bcc", "Reply-To", "Subject", "In-Reply-To",
    "Auto-Submitted", "Precedence", "List-Id", "Content-Type", "Return-Path", "Received",
)
MAX_TEXT = 998
MAX_ADDRESSES = 10_000
MAX_HEADER_BYTES = 16 << 20
HEADER_TOO_LARGE = f"header section larger than {MAX_HEADER_BYTES >> 20} MiB"
MAX_REASON = 200
_PARSER = HeaderParser()
_NAME_CHARACTERS = r"[\041-\071\073-\176]+"
_FIELD_NAME = re.compile(_NAME_CHARACTERS)
_PLAIN_FIELD = re.compile(rf"({_NAME_CHARACTERS}):([^\r\n]*(?:(?:\r\n|\r|\n)[ \t][^\r\n]*)*)(?:\r\n|\r|\n|\Z)")
_OTHER_LINE_BREAKS = re.compile(r"[\x0b\x0c\x1c-\x1e]")
_MSGID = re.compile(r"<([^<>\s]+)>")
_BRACKETED = re.compile(r"<([^<>@\s]+@[^<>@\s]+)>")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_UNSPLITTABLE = re.compile(r'["(\\:;\[]')
_BARE_ADDRESS = re.compile(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_USUAL_DATE = re.compile(
    r"(?:[A-Za-z]{3}, )?(\d{1,2}) ([A-Za-z]{3}) ([1-9]\d{3}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})(?: \([^()]*\))?")
_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}


class MalformedMessage(ValueError):
    """The message lacks something every registry record needs."""


def header_block(raw: bytes) -> bytes:
    """Cut the header section so bodies are never parsed."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = raw.find(separator)
        if end != -1:
            return raw[: end + len(separator)]
    return raw


DateSource = Literal["header", "received", "delivery", "internaldate"]


class DateFallback(NamedTuple):
    """Where a connector finds a date when the message's own headers give none; asked only then."""

    source: DateSource
    date: Callable[[], datetime | None]


def read_message(
    raw: bytes | Callable[[], bytes],
    ref: str,
    folder: str,
    channel: Channel = "company",
    fallback: DateFallback | None = None,
) -> tuple[MessageHeaders | None, list[Skipped]]:
    """The one guard every mail connector puts around one message, so no message can stop a source.

    Whatever the bytes hold, and whatever reading them raises (`raw` may be the function that reads
    them), the result is the record, or None and a Skipped naming `ref` and why. A record can come
    with a Skipped too: for the addresses past MAX_ADDRESSES in one field, which were not read.
    """
    try:
        headers, unread = _parse(raw() if callable(raw) else raw, folder, channel, fallback)
    except MalformedMessage as error:
        return None, [Skipped(ref, str(error))]
    except OSError as error:
        return None, [Skipped(ref, f"unreadable: {error.strerror or _described(error)}")]
    except Exception as error:  # any other failure is this message's, never the source's
        return None, [Skipped(ref, f"unreadable header: {_described(error)}")]
    return headers, [Skipped(ref, reason) for reason in unread] if unread else []


def parse_headers(
    raw: bytes,
    folder: str,
    channel: Channel = "company",
    fallback: DateFallback | None = None,
) -> MessageHeaders:
    """Parse a header block; raise MalformedMessage when it cannot become a registry record.

    Connectors use read_message instead, which also catches every other exception and says how
    many addresses past MAX_ADDRESSES a field had.
    """
    return _parse(raw, folder, channel, fallback)[0]


def _parse(
    raw: bytes, folder: str, channel: Channel, fallback: DateFallback | None
) -> tuple[MessageHeaders, list[str]]:
    """The record and why some of its addresses were not read. A header section is read whole, as
    RFC 5322 sets no limit on a folded field and a cut one would end in a truncated address; only
    past MAX_HEADER_BYTES is the message refused."""
    if len(raw) > MAX_HEADER_BYTES and len(header_block(raw)) > MAX_HEADER_BYTES:
        raise MalformedMessage(HEADER_TOO_LARGE)
    fields = _fields(header_fields(raw))
    if not fields:
        raise MalformedMessage("no headers")
    unread: list[str] = []
    sender = _addresses(fields.get("from"), "From", unread)
    if not sender:
        raise MalformedMessage("no usable From address")
    date, date_source = _message_date(fields, fallback)
    to = _addresses(fields.get("to"), "To", unread)
    cc = _addresses(fields.get("cc"), "Cc", unread)
    subject = _decoded(_first(fields, "subject"))
    headers = MessageHeaders(
        message_id=message_key(_first(fields, "message-id"), sender, to, date, subject),
        folder=folder,
        date=date,
        sender=sender,
        to=to,
        cc=cc,
        bcc=_addresses(fields.get("bcc"), "Bcc", unread),
        reply_to=_addresses(fields.get("reply-to"), "Reply-To", unread),
        subject=subject,
        in_reply_to=_first_msgid(_first_text(fields, "in-reply-to")),
        auto_submitted=_first_text(fields, "auto-submitted").lower(),
        precedence=_first_text(fields, "precedence").lower(),
        list_id=_first_text(fields, "list-id"),
        content_type=_first_text(fields, "content-type").split(";", 1)[0].strip().lower(),
        return_path=_first_text(fields, "return-path"),
        channel=channel,
        date_source=date_source,
    )
    return headers, unread


def _message_date(fields: dict[str, list[object]], fallback: DateFallback | None) -> tuple[datetime, DateSource]:
    """The Date header, else the newest Received stamp, else the connector's own delivery date:
    a message is not lost for a date its sender's client forgot or garbled."""
    date = parse_date(_first(fields, "date"))
    if date is not None:
        return date, "header"
    received = _received_date(fields.get("received"))
    if received is not None:
        return received, "received"
    if fallback is not None:
        delivered = fallback.date()
        if delivered is not None:
            return delivered, fallback.source
    raise MalformedMessage("missing or invalid Date")


def _received_date(values: list[object] | None) -> datetime | None:
    """Each relay stamps its Received field with the time after the last ';' (RFC 5322 3.6.7)."""
    dates = [date for value in values or () if (date := parse_date(_text(value, None).rpartition(";")[2]))]
    return max(dates, default=None)


def _described(error: BaseException) -> str:
    return _text(f"{type(error).__name__}: {error}")[:MAX_REASON]


def header_fields(raw: bytes) -> list[tuple[str, str]]:
    """(name, value) of every header field, exactly as email.parser's `raw_items()` gives them.

    Raw values, so a header in 8-bit UTF-8 (RFC 6532) keeps its text: compat32's `items()` would
    turn each of its bytes into U+FFFD. A plain header section is cut into fields here, each value
    as compat32's `header_source_parse` gives it, because FeedParser's line-by-line machinery was
    half of all header parsing on Enron (0.34 of 0.85 s, down to 0.16 s; matching each field whole
    rather than line by line took another quarter off); any section email.parser would treat
    specially goes to email.parser itself.
    """
    text = header_block(raw).decode("ascii", "surrogateescape")
    fields = _plain_fields(text)
    return fields if fields is not None else list(_PARSER.parsestr(text).raw_items())


def _plain_fields(text: str) -> list[tuple[str, str]] | None:
    """None unless every line is a field, a continuation of one, or the blank line ending them: a
    Unix From line, a stray first continuation, a missing blank line or an unusual line break each
    get email.parser's own handling. Each value is made as compat32's `header_source_parse` makes
    it: leading blanks of its first line dropped, line breaks inside kept."""
    if _OTHER_LINE_BREAKS.search(text):
        return None
    if "\r" not in text:
        return _split_fields(text, "\n")
    if text.count("\r") == text.count("\n") == text.count("\r\n"):
        return _split_fields(text, "\r\n")
    return _matched_fields(text)


def _split_fields(text: str, line_break: str) -> list[tuple[str, str]] | None:
    """`_plain_fields` of a section whose every line ends in `line_break` (all IMAP answers, nearly
    every file): cut into lines by `str.split`, a third faster than matching each field."""
    fields: list[tuple[str, str]] = []
    for line in text.split(line_break):
        if not line:
            return fields
        if line[0] in " \t":
            if not fields:
                return None
            name, value = fields[-1]
            fields[-1] = (name, value + line_break + line)
            continue
        name, colon, value = line.partition(":")
        if not colon or _FIELD_NAME.fullmatch(name) is None:
            return None
        fields.append((name, value.lstrip(" \t")))
    return fields


def _matched_fields(text: str) -> list[tuple[str, str]] | None:
    """`_plain_fields` of a section with mixed line breaks: each field matched whole, continuations
    included, without cutting the section into lines first."""
    fields: list[tuple[str, str]] = []
    position, end = 0, len(text)
    while position < end and text[position] not in "\r\n":
        field = _PLAIN_FIELD.match(text, position)
        if field is None:
            return None
        fields.append((field[1], field[2].lstrip(" \t")))
        position = field.end()
    return fields


def _fields(pairs: list[tuple[str, str]]) -> dict[str, list[object]]:
    """Every value by lower-case field name, read in one pass instead of one scan per field."""
    fields: dict[str, list[object]] = {}
    for name, value in pairs:
        fields.setdefault(name.lower(), []).append(value)
    return fields


def _first(fields: dict[str, list[object]], name: str) -> object:
    values = fields.get(name)
    return values[0] if values else None


def _first_text(fields: dict[str, list[object]], name: str) -> str:
    """The first value of a field that most mail lacks, as storable text."""
    values = fields.get(name)
    return _text(values[0]) if values else ""


def _text(value: object, limit: int | None = MAX_TEXT) -> str:
    """Header values may carry undecodable bytes as surrogates; make them storable text. Free text is
    cut to one line's worth for storage; address lists (`limit` None) never are, as a cut one ends in
    a truncated address."""
    if value is None:
        return ""
    text = str(value)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if not text.isprintable():
        text = _CONTROL.sub(" ", text)
    return text.strip()[:limit]


def _decoded(value: object) -> str:
    """RFC 2047 words decoded; one the email package cannot decode (a bogus charset, base64 that cannot
    be padded: HeaderParseError and CharsetError are no ValueError) stays as it came."""
    raw = _text(value)
    if "=?" not in raw:
        return raw
    try:
        return _text(str(make_header(decode_header(raw))))
    except (LookupError, UnicodeError, ValueError, AssertionError, MessageError):
        return raw


def _addresses(values: list[object] | None, name: str, unread: list[str]) -> tuple[Address, ...]:
    """Every address of one field, up to MAX_ADDRESSES: the count, not the length, bounds the work
    each message gives the registry; how many were left is said in `unread`."""
    if not values:
        return ()
    if len(values) == 1:
        text = _text(values[0], None)
        found = _parsed_addresses(text) or _bracketed_addresses(text)
    else:
        texts = [_text(value, None) for value in values]
        found = tuple(a for text in texts for a in _parsed_addresses(text))
        found = found or tuple(a for text in texts for a in _bracketed_addresses(text))
    if len(found) <= MAX_ADDRESSES:
        return found
    unread.append(f"{len(found) - MAX_ADDRESSES} {name} addresses past the first {MAX_ADDRESSES} not read")
    return found[:MAX_ADDRESSES]


def _parsed_addresses(text: str) -> tuple[Address, ...]:
    """getaddresses is the slowest step, and long recipient lists are mostly the same few thousand
    mailboxes: without quotes, comments, groups or domain literals a comma can only separate
    mailboxes, so each one is parsed once and remembered. A whole field is remembered only up to
    one line's length, so the cache never holds the rare field of thousands of recipients."""
    return _remembered_addresses(text) if len(text) <= MAX_TEXT else _split_addresses(text)


def _split_addresses(text: str) -> tuple[Address, ...]:
    if _UNSPLITTABLE.search(text):
        return _mailboxes(text)
    return tuple(a for piece in text.split(",") for a in _mailboxes(piece.strip()))


def _mailboxes(text: str) -> tuple[Address, ...]:
    return _remembered_mailboxes(text) if len(text) <= MAX_TEXT else _read_mailboxes(text)


def _read_mailboxes(text: str) -> tuple[Address, ...]:
    """A bare dot-atom address, most of what mail names, is what getaddresses would make of it; the
    rest goes through getaddresses."""
    if _BARE_ADDRESS.fullmatch(text):
        return (Address("", text),) if len(text) <= 254 else ()
    found: list[Address] = []
    for name, email in getaddresses([text]):
        email = email.strip().strip("'\"")
        if "@" not in email or len(email) > 254:
            continue
        found.append(Address(name=_decoded(name)[:256], email=email))
    return tuple(found)


_remembered_addresses = lru_cache(maxsize=65536)(_split_addresses)
_remembered_mailboxes = lru_cache(maxsize=65536)(_read_mailboxes)


def _bracketed_addresses(text: str) -> tuple[Address, ...]:
    """Last resort for headers whose display names break RFC 5322 parsing (stray parentheses, bytes)."""
    return tuple(Address("", email) for email in _BRACKETED.findall(text) if len(email) <= 254)


def parse_date(value: object) -> datetime | None:
    """An RFC 5322 (or asctime) date in UTC, None when there is none to read."""
    text = _text(value)
    return _read_date(text) if text else None


@lru_cache(maxsize=65536)
def _read_date(text: str) -> datetime | None:
    """Remembered: one message's copies in several folders and mailboxes carry the same Date, as do
    the Received stamps of mail one relay passed on at once."""
    usual = _USUAL_DATE.fullmatch(text)
    try:
        parsed = _usual_date(usual) if usual and usual[2].lower() in _MONTHS else parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        return None


def _usual_date(usual: re.Match[str]) -> datetime:
    """The date RFC 5322 recommends (`Mon, 14 May 2001 16:39:00 -0700`), read as parsedate_to_datetime
    reads it at a quarter of its cost; most mail dates are written so."""
    day, month, year, hour, minute, second, sign, offset_hours, offset_minutes = usual.groups()
    offset = int(offset_hours) * 3600 + int(offset_minutes) * 60
    return datetime(int(year), _MONTHS[month.lower()], int(day), int(hour), int(minute), int(second),
                    tzinfo=timezone(timedelta(seconds=-offset if sign == "-" else offset)))


def _first_msgid(text: str) -> str:
    match = _MSGID.search(text)
    return match.group(1) if match else ""


def message_key(
    value: object, sender: tuple[Address, ...], to: tuple[Address, ...], date: datetime, subject: str
) -> str:
    """The RFC Message-ID without its angle brackets, or a stable hash so a message without one still
    dedups; every mail connector keys messages this way, so one message read by two protocols is one."""
    text = _text(value)
    found = _first_msgid(text) or text.strip("<> ")
    if found and " " not in found:
        return found[:512]
    basis = "\x1f".join(
        [",".join(a.email.lower() for a in sender), ",".join(a.email.lower() for a in to),
         date.isoformat(), subject]
    )
    return f"{hashlib.sha256(basis.encode()).hexdigest()[:40]}@custody.invalid"
