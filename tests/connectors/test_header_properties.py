"""Properties of header parsing over generated input: nothing a message holds raises out of the parser
but MalformedMessage, no encoded word costs a message, and every well-formed address comes out."""

from __future__ import annotations

import base64
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.headers import MalformedMessage, parse_headers, read_message
from tests.support.header_strategies import (
    encoded_words,
    header_bytes,
    q_encoded,
    words,
)

EXAMPLES = settings(max_examples=150, deadline=None, database=None)
DATE = b"Date: Tue, 3 Mar 2026 10:00:00 +0000\r\n"
ATEXT = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"


def message(sender: str, to: str = "Bob <bob@acme.test>", cc: str = "", subject: str = "Order") -> bytes:
    lines = [f"From: {sender}", f"To: {to}"] + ([f"Cc: {cc}"] if cc else []) + [f"Subject: {subject}"]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n" + DATE + b"\r\nbody\r\n"


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
