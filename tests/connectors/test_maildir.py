"""Reading Maildir trees and CMU-style archives batch by batch, resuming from the cursor."""

import itertools
import os
from pathlib import Path

import pytest

from connectors.maildir import MaildirConnector
from connectors.records import MessageHeaders
from tests.connectors.contract import BATCH_SIZE, ConnectorContract, mails
from tests.support.mail import conversation, message, write_maildir
from tests.support.sources import opened


def collect(connector: MaildirConnector, cursor: dict | None = None) -> tuple[list[MessageHeaders], dict | None]:
    records: list[MessageHeaders] = []
    for batch in connector.sync(cursor):
        records += batch.records  # type: ignore[arg-type]
        cursor = batch.cursor
    return records, cursor


def test_reads_inbox_and_sent_but_never_junk_trash_or_drafts(tmp_path: Path) -> None:
    write_maildir(tmp_path, {
        "INBOX": conversation("rep@acme.test", ["c@client.test"], 3, "in"),
        "Sent": conversation("rep@acme.test", ["c@client.test"], 2, "out"),
        "Junk": [message("spam@x.test", "rep@acme.test", message_id="<spam@x>")],
        "Trash": [message("old@x.test", "rep@acme.test", message_id="<old@x>")],
        "Drafts": [message("rep@acme.test", "c@client.test", message_id="<draft@x>")],
    })
    records, _ = collect(opened(MaildirConnector, path=tmp_path))
    assert sorted(r.folder for r in records) == ["INBOX"] * 3 + ["Sent"] * 2
    assert not {"spam@x", "old@x", "draft@x"} & {r.message_id for r in records}


def test_resumes_after_the_cursor_and_sees_new_mail_only(tmp_path: Path) -> None:
    write_maildir(tmp_path, {"INBOX": conversation("rep@acme.test", ["c@client.test"], 5, "a")})
    connector = opened(MaildirConnector, path=tmp_path, batch_size=2)
    first, cursor = collect(connector)
    assert len(first) == 5
    assert collect(connector, cursor)[0] == []
    write_maildir(tmp_path, {"INBOX": conversation("rep@acme.test", ["c@client.test"], 2, "b")})
    second, _ = collect(connector, cursor)
    assert sorted(r.message_id for r in second) == ["b0@mail.test", "b1@mail.test"]


def test_each_batch_cursor_resumes_exactly_after_that_batch(tmp_path: Path) -> None:
    write_maildir(tmp_path, {"INBOX": conversation("rep@acme.test", ["c@client.test"], 7, "a")})
    connector = opened(MaildirConnector, path=tmp_path, batch_size=3)
    batches = list(connector.sync(None))
    after_first = [r.message_id for b in batches[1:] for r in b.records]
    resumed, _ = collect(connector, batches[0].cursor)
    assert [r.message_id for r in resumed] == after_first


def test_reads_cmu_style_archive_folders(enron: Path) -> None:
    records, _ = collect(opened(MaildirConnector, path=enron / "allen-p", folders=["inbox"]))
    expected = len(os.listdir(enron / "allen-p" / "inbox"))
    assert len(records) == expected
    assert all(r.folder == "inbox" for r in records)


class TestMaildirContract(ConnectorContract):
    connector = MaildirConnector

    @pytest.fixture(autouse=True)
    def _place(self, tmp_path: Path) -> None:
        self.sources = iter(tmp_path / f"source{n}" for n in itertools.count())

    def make(self, items: int, unreadable: int = 0) -> MaildirConnector:
        root = write_maildir(next(self.sources), {"INBOX": mails(items, unreadable)})
        return opened(MaildirConnector, path=root, batch_size=BATCH_SIZE)

    def unreachable(self) -> MaildirConnector:
        return opened(MaildirConnector, path=next(self.sources))
