"""A Maildir of damaged messages, each an oddity real mail systems write, and what custody must make of it.

The messages are built here by hand from RFC 5322, RFC 2047 and RFC 6532 and from what archives
hold: broken encoded words, unknown charsets, NUL bytes, 8-bit headers, lines without a colon,
bare CR and LF, huge header sections, thousands of recipients, group syntax, dates that are missing
or unreadable, no From, an empty file and binary garbage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

DELIVERED = datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)
SENT = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
DATE = b"Date: Mon, 2 Mar 2026 09:00:00 +0000\r\n"


class Readable(NamedTuple):
    """A message that must become a record: how many To, Cc and Bcc addresses, its date and where that came from."""

    recipients: int
    date: datetime
    date_source: str


class Damaged(NamedTuple):
    """One message: its name, its bytes, the record it must become and the reason it must be skipped
    for (a message can have both: one whose addresses are not all read)."""

    slug: str
    raw: bytes
    record: Readable | None = None
    skipped: str = ""


@dataclass
class DamagedMaildir:
    """What syncing the folder must give, by the ref the Maildir connector names each file with
    ("INBOX/<file name before ':'>"): the records, and the reason of each Skipped."""

    records: dict[str, Readable] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def build_damaged_maildir(root: Path) -> DamagedMaildir:
    """Write the damaged messages into the INBOX of a Maildir at `root`; return what custody must read."""
    for part in ("tmp", "new", "cur"):
        (root / part).mkdir(parents=True, exist_ok=True)
    expected = DamagedMaildir()
    for number, message in enumerate(damaged_messages()):
        delivered = DELIVERED + timedelta(seconds=number)
        name = f"{int(delivered.timestamp())}.M{number}P1.{message.slug}"
        (root / "cur" / f"{name}:2,S").write_bytes(message.raw)
        ref = f"INBOX/{name}"
        if message.record is not None:
            dated = message.record.date_source == "delivery"
            expected.records[ref] = message.record._replace(date=delivered) if dated else message.record
        if message.skipped:
            expected.skipped[ref] = message.skipped
    return expected


def damaged_messages() -> list[Damaged]:
    """Each damaged message; a record dated by "delivery" gets its file name's time when built."""
    sent = Readable(1, SENT, "header")
    delivered = Readable(1, DELIVERED, "delivery")
    return [
        Damaged("bad-base64-in-names", with_headers(b"From: =?utf-8?b?QW5u?= =?utf-8?b?a?= <ann@client.test>",
                                                    b"To: =?utf-8?q?Bob_=?= <bob@acme.test>",
                                                    b"Subject: =?utf-8?b?T3JkZXI?="), sent),
        Damaged("unknown-charsets", with_headers(b"From: =?x-klingon?q?Qapla=27?= <worf@client.test>",
                                                 b"To: =?utf-8*de?q?M=C3=BCller?= <mueller@acme.test>",
                                                 b"Subject: =?iso-2022-jp-x?b?GyRCJEgbKEI=?= =?\xe9?b??="), sent),
        Damaged("nul-bytes", with_headers(b"From: Ann\x00Lee <ann@client.test>",
                                          b"To: bob@acme.test\x00, cy@acme.test",
                                          b"Subject: nul\x00byte"), sent._replace(recipients=2)),
        Damaged("latin-1-header", with_headers(b"From: Jos\xe9 N\xfa\xf1ez <jose@cliente.es>",
                                               b"To: Ren\xe9e <renee@acme.test>",
                                               b"Subject: Pedido n\xfamero 7"), sent),
        Damaged("utf-8-header", with_headers("From: José Núñez <jose@cliente.es>".encode(),
                                             "To: 张三 <zhang@acme.test>".encode(),
                                             "Subject: Pedido número 7".encode()), sent),
        Damaged("line-without-colon", with_headers(b"From: ann@client.test", b"To: bob@acme.test", DATE.rstrip(),
                                                   b"this line was wrapped by a broken mailer",
                                                   b"Subject: read by some servers, not by email.parser", date=b""),
                sent),
        Damaged("bare-cr", b"From: ann@client.test\rTo: bob@acme.test\r" + DATE.rstrip() + b"\r\rbody\r", sent),
        Damaged("mixed-line-ends", b"From: ann@client.test\r\nTo: bob@acme.test,\n cy@acme.test\r" + DATE
                + b"\nbody\n", sent._replace(recipients=2)),
        Damaged("unix-from-line", b"From ann@client.test Mon Mar  2 09:00:00 2026\n"
                + with_headers(b"From: ann@client.test", b"To: bob@acme.test"), sent),
        Damaged("stray-parenthesis", with_headers(b"From: Ann (Sales <ann@client.test>", b"To: bob@acme.test"), sent),
        Damaged("group-undisclosed", with_headers(b"From: ann@client.test", b"To: undisclosed-recipients:;"),
                sent._replace(recipients=0)),
        Damaged("group-team", with_headers(b"From: ann@client.test",
                                           b"To: Team: ben@acme.test, cy@acme.test;, Dee <dee@acme.test>"),
                sent._replace(recipients=3)),
        Damaged("header-200kb-received-only",
                received_chain(2000) + b"From: ann@client.test\r\nTo: " + recipients(3) + b"\r\n\r\nbody\r\n",
                Readable(3, SENT + timedelta(minutes=1999), "received")),
        Damaged("header-2mib", b"".join(b"X-Trace: %06d %s\r\n" % (n, b"x" * 90) for n in range(21_000))
                + with_headers(b"From: ann@client.test", b"To: " + recipients(3)), sent._replace(recipients=3)),
        Damaged("5000-recipients", with_headers(b"From: ann@client.test", b"To: " + recipients(5000)),
                sent._replace(recipients=5000)),
        Damaged("10050-recipients", with_headers(b"From: ann@client.test", b"To: " + recipients(10_050)),
                sent._replace(recipients=10_000), "50 To addresses past the first 10000 not read"),
        Damaged("missing-date", with_headers(b"From: ann@client.test", b"To: bob@acme.test", date=b""), delivered),
        Damaged("unreadable-date", with_headers(b"From: ann@client.test", b"To: bob@acme.test",
                                                date=b"Date: sometime next week\r\n"), delivered),
        Damaged("year-99999", with_headers(b"From: ann@client.test", b"To: bob@acme.test",
                                           date=b"Date: Tue, 3 Mar 99999 10:00:00 +0000\r\n"), delivered),
        Damaged("unreadable-date-received",
                with_headers(b"From: ann@client.test", b"To: bob@acme.test",
                             b"Received: from mx.client.test by mx.acme.test; Tue, 3 Mar 2026 10:00:00 +0100",
                             date=b"Date: 32/13/2026\r\n"),
                Readable(1, datetime(2026, 3, 3, 9, tzinfo=timezone.utc), "received")),
        Damaged("missing-from", with_headers(b"To: bob@acme.test", b"Subject: who sent this?"),
                skipped="no usable From address"),
        Damaged("from-without-address", with_headers(b"From: undisclosed", b"To: bob@acme.test"),
                skipped="no usable From address"),
        Damaged("empty", b"", skipped="no headers"),
        Damaged("binary-garbage", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16, skipped="no headers"),
    ]


def with_headers(*lines: bytes, date: bytes = DATE) -> bytes:
    """A CRLF message with these header lines, then the date line, a blank line and a body."""
    return b"".join(line + b"\r\n" for line in lines) + date + b"\r\nbody\r\n"


def recipients(count: int) -> bytes:
    """`count` customer mailboxes on folded lines, as a mail client lays out a long To field."""
    return b",\r\n\t".join(b"Customer %d <c%d@shop%d.test>" % (n, n, n % 97) for n in range(count))


def received_chain(count: int) -> bytes:
    """Received fields newest first, one relay a minute, each about 100 bytes."""
    return b"".join(
        b"Received: from relay%d.example.net (relay%d.example.net [192.0.2.%d]) by relay%d.example.net; %s\r\n"
        % (n, n, n % 256, n + 1, (SENT + timedelta(minutes=n)).strftime("%a, %d %b %Y %H:%M:%S +0000").encode())
        for n in reversed(range(count))
    )
