"""The header parser keeps every message it can and names what it cannot read."""

from datetime import timezone

import pytest

from connectors.headers import MalformedMessage, parse_headers
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
