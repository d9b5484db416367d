"""Properties of header parsing over generated input: nothing a message holds raises out of the parser
but MalformedMessage, no encoded word costs a message, and every well-formed address comes out."""

from __future__ import annotations

import base64
import string
from datetime import datetime, timezone
from email.utils import getaddresses, parsedate_to_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.headers import MalformedMessage, header_fields, parse_headers, read_message
from connectors.records import Address
from tests.connectors.test_headers import email_parser_fields
from tests.support.header_strategies import (
    encoded_words,
    header_bytes,
    header_sections,
    q_encoded,
    words,
)

EXAMPLES = settings(max_examples=150, deadline=None, database=None)
DATE = b"Date: Tue, 3 Mar 2026 10:00:00 +0000\r\n"
ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"


def message(sender: str, to: str = "Bob <bob@acme.test>", cc: str = "", subject: str = "Order") -> bytes:
    lines = [f"From: {sender}", f"To: {to}"] + ([f"Cc: {cc}"] if cc else []) + [f"Subject: {subject}"]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n" + DATE + b"\r\nbody\r\n"


@settings(max_examples=600, deadline=None, database=None)
@given(header_sections())
def test_header_fields_are_what_email_parser_reads_whatever_the_lines_and_their_breaks(raw: bytes) -> None:
    assert header_fields(raw) == email_parser_fields(raw)


@EXAMPLES
@given(header_bytes)
def test_arbitrary_header_bytes_raise_nothing_but_malformed_message(raw: bytes) -> None:
    try:
        parse_headers(raw, "INBOX")
    except MalformedMessage:
        pass


@EXAMPLES
@given(header_bytes)
def test_the_shared_guard_gives_a_record_or_a_reason_for_any_bytes(raw: bytes) -> None:
    headers, skipped = read_message(raw, "INBOX/1", "INBOX")
    if headers is None:
        assert len(skipped) == 1 and skipped[0].ref == "INBOX/1" and skipped[0].reason
    else:
        assert headers.sender and headers.date is not None
        headers.subject.encode("utf-8")


@EXAMPLES
@given(st.lists(st.one_of(encoded_words, words), min_size=1, max_size=4).map(" ".join))
def test_no_encoded_word_costs_a_message_its_record(phrase: str) -> None:
    """Bogus charsets, broken base64 and quoted-printable, undecodable text: the words stay as they
    came, and the message with its addresses is read."""
    headers = parse_headers(message(f"{phrase} <ann@client.test>", f"{phrase} <bob@acme.test>", subject=phrase),
                            "INBOX")
    assert [a.email for a in headers.sender] == ["ann@client.test"]
    assert [a.email for a in headers.to] == ["bob@acme.test"]
    for text in (headers.subject, headers.sender[0].name, headers.to[0].name):
        text.encode("utf-8")


def quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encoded(text: str, encoding: str) -> str:
    raw = text.encode("utf-8")
    return f"=?utf-8?{encoding}?{base64.b64encode(raw).decode() if encoding == 'b' else q_encoded(raw)}?="


def unquoted(local: str) -> bool:
    """custody takes off the quotes Outlook exports put around an address ('jo@x.com'), so a local
    part that starts with one is not generated."""
    return not local.startswith("'")


atoms = st.text(alphabet=ATEXT, min_size=1, max_size=12)
local_parts = st.lists(atoms, min_size=1, max_size=3).map(".".join).filter(unquoted)
labels = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=10)
domains = st.lists(labels, min_size=2, max_size=4).map(".".join)
addr_specs = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)
names = st.one_of(
    st.just(""),
    st.lists(atoms, min_size=1, max_size=4).map(" ".join),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=30).map(quoted),
    st.text(st.characters(codec="utf-8"), max_size=20).flatmap(
        lambda text: st.sampled_from([encoded(text, "b"), encoded(text, "q")])),
    st.text(alphabet="José Núñez 張三", min_size=1, max_size=12).filter(str.strip),
)
mailboxes = st.tuples(names, addr_specs)
separators = st.sampled_from([", ", ",", ",\r\n ", ",\r\n\t", " ,  "])


def joined(boxes: list[tuple[str, str]], separator: str) -> str:
    return separator.join(f"{name} <{spec}>" if name else spec for name, spec in boxes)


@EXAMPLES
@given(st.lists(mailboxes, min_size=1, max_size=60), st.lists(mailboxes, max_size=60), separators)
def test_every_well_formed_address_comes_out_in_order_however_long_the_field(
    to: list[tuple[str, str]], cc: list[tuple[str, str]], separator: str
) -> None:
    headers = parse_headers(message("Ann <ann@client.test>", joined(to, separator), joined(cc, separator)), "INBOX")
    assert [a.email for a in headers.to] == [spec for _, spec in to]
    assert [a.email for a in headers.cc] == [spec for _, spec in cc]


def email_utils_date(text: str) -> datetime | None:
    """What email.utils makes of a Date, in UTC: the reading the parser's own shortcut must equal."""
    try:
        parsed = parsedate_to_datetime(text)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def mostly(low: int, high: int, width: int = 2) -> st.SearchStrategy[str]:
    """A number in its valid range nine times in ten, else any that fits the width."""
    return (st.integers(0, 9).flatmap(lambda draw: st.integers(low, high) if draw else st.integers(0, 10 ** width - 1))
            .map(f"{{:0{width}d}}".format))


usual_dates = st.builds(
    "{}{} {} {} {}:{}:{} {}{}{}{}".format,
    st.sampled_from(["", "Mon, ", "Sun, ", "Xyz, "]), st.one_of(st.integers(1, 28).map(str), mostly(0, 31)),
    st.sampled_from(["Jan", "feb", "MAR", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Foo"]),
    st.integers(1000, 9999).map(str), mostly(0, 23), mostly(0, 59), mostly(0, 59), st.sampled_from("+-"),
    mostly(0, 14), mostly(0, 59), st.sampled_from(["", " (PDT)", " (UTC)"]),
)


@EXAMPLES
@given(usual_dates)
def test_a_date_written_as_rfc_5322_recommends_reads_as_email_utils_reads_it(text: str) -> None:
    expected = email_utils_date(text)
    raw = f"From: ann@client.test\r\nTo: bob@acme.test\r\nDate: {text}\r\n\r\n".encode()
    if expected is None:
        with pytest.raises(MalformedMessage, match="Date"):
            parse_headers(raw, "INBOX")
        return
    parsed = parse_headers(raw, "INBOX").date
    assert parsed == expected and parsed.tzinfo == timezone.utc


@EXAMPLES
@given(st.from_regex(r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", fullmatch=True))
def test_a_bare_address_reads_as_getaddresses_reads_it(address: str) -> None:
    headers = parse_headers(message("ann@client.test", f"{address}, bob@acme.test"), "INBOX")
    expected = [Address(name, email) for name, email in getaddresses([address]) if len(email) <= 254]
    assert list(headers.to) == [*expected, Address("", "bob@acme.test")]
