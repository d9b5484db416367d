"""Damaged mail never stops a source: every message with a readable From becomes a record with all its
recipients and a date, every other one a Skipped naming it and why, and what does stop a sync says where."""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connectors.headers import HEADER_TOO_LARGE, MAX_HEADER_BYTES
from connectors.maildir import MaildirConnector
from connectors.mbox import MboxConnector
from connectors.records import Address, Batch, MessageHeaders
from tests.support.damaged_mail import build_damaged_maildir, recipients, with_headers
from tests.support.mail import conversation, write_maildir
from tests.support.sources import opened


def records(batches: list[Batch]) -> list[MessageHeaders]:
    return [record for batch in batches for record in batch.records]  # type: ignore[misc]


def skipped(batches: list[Batch]) -> dict[str, str]:
    return {item.ref: item.reason for batch in batches for item in batch.skipped}


def test_a_damaged_maildir_gives_a_record_or_a_named_reason_for_every_message(tmp_path: Path) -> None:
    expected = build_damaged_maildir(tmp_path)

    batches = list(opened(MaildirConnector, path=tmp_path, batch_size=7).sync(None))

    assert [(len(r.to) + len(r.cc) + len(r.bcc), r.date, r.date_source) for r in records(batches)] == list(
        expected.records.values())
    assert skipped(batches) == expected.skipped


def test_names_with_broken_encoded_words_and_8_bit_bytes_keep_their_message(tmp_path: Path) -> None:
    expected = build_damaged_maildir(tmp_path)
    found = dict(zip([ref.rsplit(".", 1)[1] for ref in expected.records],
                     records(list(opened(MaildirConnector, path=tmp_path).sync(None))), strict=True))
    assert found["bad-base64-in-names"].sender == (Address("=?utf-8?b?QW5u?= =?utf-8?b?a?=", "ann@client.test"),)
    assert found["bad-base64-in-names"].to == (Address("Bob =", "bob@acme.test"),)
    assert found["unknown-charsets"].sender == (Address("=?x-klingon?q?Qapla=27?=", "worf@client.test"),)
    assert found["latin-1-header"].sender == (Address("Jos\ufffd N\ufffd\ufffdez", "jose@cliente.es"),)
    assert found["utf-8-header"].to == (Address("张三", "zhang@acme.test"),)
    assert found["nul-bytes"].subject == "nul byte"


def test_five_thousand_recipients_are_all_read_and_none_is_cut(tmp_path: Path) -> None:
    write_maildir(tmp_path, {"INBOX": [with_headers(b"From: ann@client.test", b"To: " + recipients(5000))]})
    [record] = records(list(opened(MaildirConnector, path=tmp_path).sync(None)))
    assert [a.email for a in record.to] == [f"c{n}@shop{n % 97}.test" for n in range(5000)]
    assert record.to[-1].name == "Customer 4999"


@pytest.mark.parametrize("name, date", [
    ("1700000000.M1P2.host:2,S", datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)),
    ("1.", datetime(2001, 9, 9, 1, 46, 40, tzinfo=timezone.utc)),
])
def test_a_message_without_a_date_is_dated_by_its_delivery(tmp_path: Path, name: str, date: datetime) -> None:
    """A Maildir name starts with the delivery time; a CMU-style name does not, so the file's mtime counts."""
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / name).write_bytes(with_headers(b"From: ann@client.test", b"To: bob@acme.test", date=b""))
    os.utime(folder / name, (1_000_000_000, 1_000_000_000))
    [record] = records(list(opened(MaildirConnector, path=tmp_path).sync(None)))
    assert (record.date, record.date_source) == (date, "delivery")


def test_an_mbox_message_without_a_date_is_dated_by_its_from_line(tmp_path: Path) -> None:
    dated = b"From ann@client.test Mon Mar  2 09:00:00 2026\nFrom: ann@client.test\nTo: bob@acme.test\n\nbody\n\n"
    undated = b"From MAILER-DAEMON sometime\nFrom: ann@client.test\nTo: bob@acme.test\n\nbody\n"
    (tmp_path / "archive.mbox").write_bytes(dated + undated)
    batches = list(opened(MboxConnector, path=tmp_path / "archive.mbox").sync(None))
    assert [(r.date, r.date_source) for r in records(batches)] == [
        (datetime(2026, 3, 2, 9, tzinfo=timezone.utc), "delivery")]
    assert skipped(batches) == {f"archive.mbox@{len(dated)}": "missing or invalid Date"}


def big_header_message() -> bytes:
    filler = b"X-Trace: " + b"x" * 990 + b"\r\n"
    return filler * (MAX_HEADER_BYTES // len(filler) + 1) + with_headers(b"From: ann@client.test", b"To: bob@acme.test")


def test_a_header_section_past_16_mib_is_skipped_never_read_cut(tmp_path: Path) -> None:
    write_maildir(tmp_path / "maildir", {"INBOX": [big_header_message()]})
    (tmp_path / "archive.mbox").write_bytes(b"From ann@client.test Mon Mar  2 09:00:00 2026\n" + big_header_message())
    from_maildir = list(opened(MaildirConnector, path=tmp_path / "maildir").sync(None))
    from_mbox = list(opened(MboxConnector, path=tmp_path / "archive.mbox").sync(None))
    assert (records(from_maildir), list(skipped(from_maildir).values())) == ([], [HEADER_TOO_LARGE])
    assert (records(from_mbox), skipped(from_mbox)) == ([], {"archive.mbox@0": HEADER_TOO_LARGE})


def test_a_folder_gone_mid_sync_fails_the_sync_with_the_folder_named(tmp_path: Path) -> None:
    write_maildir(tmp_path, {"INBOX": conversation("rep@acme.test", ["c@client.test"], 3, "in"),
                             "Sent": conversation("rep@acme.test", ["c@client.test"], 3, "out")})
    batches = opened(MaildirConnector, path=tmp_path, batch_size=2).sync(None)
    next(batches)
    shutil.rmtree(tmp_path / ".Sent")
    with pytest.raises(FileNotFoundError) as failure:
        list(batches)
    assert failure.value.__notes__ == ["at Sent"]


def test_an_mbox_gone_mid_sync_fails_the_sync_with_the_file_named(tmp_path: Path) -> None:
    for name in ("a.mbox", "b.mbox"):
        (tmp_path / name).write_bytes(b"From ann@client.test Mon Mar  2 09:00:00 2026\n"
                                      + with_headers(b"From: ann@client.test", b"To: bob@acme.test"))
    batches = opened(MboxConnector, path=tmp_path).sync(None)
    next(batches)
    (tmp_path / "b.mbox").unlink()
    with pytest.raises(FileNotFoundError) as failure:
        list(batches)
    assert failure.value.__notes__ == ["at b.mbox"]
