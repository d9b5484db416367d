"""The header parser keeps every message it can and names what it cannot read."""

from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest

from connectors.headers import (
    HEADER_TOO_LARGE,
    MAX_ADDRESSES,
    MAX_HEADER_BYTES,
    DateFallback,
    MalformedMessage,
    _plain_fields,
    header_block,
    header_fields,
    parse_headers,
    read_message,
)
from connectors.records import Address, Skipped
from tests.support.damaged_mail import recipients, with_headers
from tests.support.mail import message


def test_reads_addresses_date_and_encoded_words() -> None:
    raw = (b"Message-ID: <abc@x.test>\r\nDate: Tue, 3 Mar 2026 10:00:00 +0800\r\n"
           b"From: =?utf-8?b?5byg5LiJ?= <zhang@kunde.cn>\r\nTo: Bob <bob@acme.test>, undisclosed:;\r\n"
           b"Subject: =?gb2312?b?1tDOxA==?= order\r\n\r\nbody")
    headers = parse_headers(raw, "INBOX")
    assert headers.message_id == "abc@x.test"
    assert headers.sender[0].name == "张三" and headers.sender[0].email == "zhang@kunde.cn"
    assert [a.email for a in headers.to] == ["bob@acme.test"]
    assert headers.subject == "中文 order"
    assert headers.date is not None and headers.date.tzinfo == timezone.utc and headers.date.hour == 2


def test_message_without_message_id_gets_a_stable_key() -> None:
    raw = message("a@x.test", "b@y.test")
    first, second = parse_headers(raw, "INBOX"), parse_headers(raw, "Sent")
    assert first.message_id.endswith("@custody.invalid")
    assert first.message_id == second.message_id


@pytest.mark.parametrize("raw, reason", [
    (b"", "no headers"),
    (b"Subject: hi\r\nDate: Tue, 3 Mar 2026 10:00:00 +0000\r\n\r\n", "no usable From"),
    (b"From: a@x.test\r\nDate: yesterday-ish\r\n\r\n", "invalid Date"),
    (b"From: a@x.test\r\nDate: Tue, 3 Mar 99999 10:00:00 +0000\r\n\r\n", "invalid Date"),
])
def test_unusable_messages_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        parse_headers(raw, "INBOX")


def test_undecodable_bytes_and_garbage_encoded_words_become_storable_text() -> None:
    raw = (b"From: \xff\xfe Caf\xe9 <cafe@bistro.test>\r\nDate: Tue, 3 Mar 2026 10:00:00 +0000\r\n"
           b"Subject: =?x-unknown?q?=ZZ=?= \x81\r\nTo: " + b"x" * 10_000 + b"@y.test\r\n\r\n")
    headers = parse_headers(raw, "INBOX")
    assert headers.sender[0].email == "cafe@bistro.test"
    headers.subject.encode("utf-8")
    headers.sender[0].name.encode("utf-8")
    assert headers.to == ()


def test_headers_in_raw_utf8_keep_their_text() -> None:
    """RFC 6532 lets a header carry UTF-8 without encoded words; its text must survive."""
    raw = ("From: José Núñez <jose@cliente.es>\r\nTo: Ann <ann@acme.test>\r\n"
           "Date: Tue, 3 Mar 2026 10:00:00 +0000\r\nSubject: Pedido número 7\r\n\r\n").encode()
    headers = parse_headers(raw, "INBOX")
    assert headers.sender[0].name == "José Núñez"
    assert headers.subject == "Pedido número 7"


def email_parser_fields(raw: bytes) -> list[tuple[str, str]]:
    return list(BytesHeaderParser().parsebytes(header_block(raw)).raw_items())


@pytest.mark.parametrize("raw", [
    b"From: a@x.test\r\nTo: b@y.test,\r\n\tc@y.test\r\n  d@y.test\r\nSubject:\r\n\r\nbody",
    b"From: a@x.test\nSubject: lf only\n\nbody",
    b"From: a@x.test\rSubject: cr only\r\rbody",
    b"From: a@x.test\r\nSubject: no blank line at the end",
    b"From a@x.test Tue Mar  3 10:00:00 2026\nFrom: a@x.test\n\n",
    b" continued first\nFrom: a@x.test\n\n",
    b"From: a@x.test\nthis line is body without a blank line\nTo: b@y.test\n\n",
    b"From: a@x.test\n: no name\nTo: b@y.test\n\n",
    b"From: a@x.test\nBad Name: space in the name\n\n",
    b"From: a@x.test\nSubject: form\x0cfeed\n\n",
    b"From: Caf\xe9 \xff <a@x.test>\nSubject: \xc3\xa9t\xc3\xa9\n\n",
    b"X-Empty:\nFrom:a@x.test\nfrom: twice@x.test\n\n",
    b"",
])
def test_header_fields_are_what_email_parser_reads(raw: bytes) -> None:
    assert header_fields(raw) == email_parser_fields(raw)


@pytest.mark.parametrize("line_break", ["\r\n", "\n"])
def test_a_section_of_fields_with_one_line_break_throughout_is_cut_without_email_parser(line_break: str) -> None:
    """The common case (every IMAP answer, nearly every file) must not fall back to the slow parser."""
    lines = ["From: a@x.test", "To: b@y.test,", "\tc@y.test,", "  d@y.test", "Subject:\t", " folded", "", "body: no"]
    assert _plain_fields(line_break.join(lines)) == [
        ("From", "a@x.test"), ("To", f"b@y.test,{line_break}\tc@y.test,{line_break}  d@y.test"),
        ("Subject", f"{line_break} folded")]


def test_header_fields_match_email_parser_across_the_enron_corpus(enron: Path) -> None:
    """Every message of three real mailboxes, whatever their mailers did to the headers."""
    files = [path for user in ("allen-p", "kean-s", "lay-k") for path in (enron / user).rglob("*") if path.is_file()]
    assert len(files) > 1000
    for path in files:
        raw = path.read_bytes()
        assert header_fields(raw) == email_parser_fields(raw), path


def test_a_malformed_encoded_word_in_a_display_name_keeps_the_message_and_its_text() -> None:
    """decode_header raises HeaderParseError, which is no ValueError, on base64 that cannot be padded."""
    headers = parse_headers(b"From: =?utf-8?b?a?= <ann@client.test>\r\nTo: bob@acme.test\r\n"
                            b"Date: Tue, 3 Mar 2026 10:00:00 +0000\r\nSubject: =?utf-8?b?a?=\r\n\r\n", "INBOX")
    assert headers.sender == (Address("=?utf-8?b?a?=", "ann@client.test"),)
    assert headers.subject == "=?utf-8?b?a?="


def test_any_failure_reading_one_message_becomes_a_skipped_item_naming_it() -> None:
    def unreadable() -> bytes:
        raise PermissionError(13, "Permission denied")

    def failing() -> bytes:
        raise RecursionError("maximum recursion depth exceeded")

    assert read_message(unreadable, "INBOX/7", "INBOX") == (None, [Skipped("INBOX/7", "unreadable: Permission denied")])
    assert read_message(failing, "INBOX/8", "INBOX") == (
        None, [Skipped("INBOX/8", "unreadable header: RecursionError: maximum recursion depth exceeded")])
    assert read_message(b"To: bob@acme.test\r\n\r\n", "INBOX/9", "INBOX") == (
        None, [Skipped("INBOX/9", "no usable From address")])


def test_recipients_past_998_characters_are_all_read() -> None:
    to = ", ".join(f"Buyer {n} <buyer{n}@enron.com>" for n in range(60))
    headers = parse_headers(message("ann@client.test", to), "INBOX")
    assert len(to) > 998
    assert [a.email for a in headers.to] == [f"buyer{n}@enron.com" for n in range(60)]


def test_addresses_past_ten_thousand_in_a_field_are_counted_not_read() -> None:
    raw = with_headers(b"From: ann@client.test", b"To: " + recipients(MAX_ADDRESSES + 3), b"Cc: " + recipients(2))
    record, skipped = read_message(raw, "INBOX/9", "INBOX")
    assert record is not None and len(record.to) == MAX_ADDRESSES and len(record.cc) == 2
    assert skipped == [Skipped("INBOX/9", "3 To addresses past the first 10000 not read")]


def test_a_header_section_past_16_mib_is_refused_whole() -> None:
    raw = b"X-Big: " + b"x" * MAX_HEADER_BYTES + b"\r\n" + message("ann@client.test", "bob@acme.test")
    assert read_message(raw, "INBOX/9", "INBOX") == (None, [Skipped("INBOX/9", HEADER_TOO_LARGE)])


DELIVERED = DateFallback("delivery", lambda: datetime(2026, 3, 3, 12, tzinfo=timezone.utc))


@pytest.mark.parametrize("fields, date, source", [
    (b"Date: Tue, 3 Mar 2026 10:00:00 +0100\r\nReceived: by mx; Wed, 4 Mar 2026 10:00:00 +0000\r\n",
     datetime(2026, 3, 3, 9, tzinfo=timezone.utc), "header"),
    (b"Received: by mx2; Tue, 3 Mar 2026 10:05:00 +0000\r\nReceived: by mx1; Tue, 3 Mar 2026 10:07:00 +0000\r\n",
     datetime(2026, 3, 3, 10, 7, tzinfo=timezone.utc), "received"),
    (b"Date: soon\r\nReceived: from a (b [192.0.2.1]) by mx; id 7;\r\n\tTue, 3 Mar 2026 10:05:00 +0000\r\n"
     b"Received: by a relay that wrote no date\r\n", datetime(2026, 3, 3, 10, 5, tzinfo=timezone.utc), "received"),
    (b"Date: soon\r\nReceived: by a relay that wrote no date\r\n", datetime(2026, 3, 3, 12, tzinfo=timezone.utc),
     "delivery"),
])
def test_every_message_gets_a_date_and_says_where_it_came_from(fields: bytes, date: datetime, source: str) -> None:
    headers = parse_headers(b"From: ann@client.test\r\nTo: bob@acme.test\r\n" + fields + b"\r\n", "INBOX",
                            fallback=DELIVERED)
    assert (headers.date, headers.date_source) == (date, source)
