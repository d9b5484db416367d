"""mbox archives: messages split on From_ lines, resumed by byte offset."""

import itertools
from pathlib import Path

import pytest

from connectors.mbox import MboxConnector
from tests.connectors.contract import BATCH_SIZE, ConnectorContract, mails
from tests.support.mail import conversation
from tests.support.sources import opened


def mbox_bytes(mails: list[bytes]) -> bytes:
    return b"".join(b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n" + m.replace(b"\r\n", b"\n") + b"\n" for m in mails)


def test_reads_every_message_and_resumes_after_appends(tmp_path: Path) -> None:
    path = tmp_path / "archive.mbox"
    path.write_bytes(mbox_bytes(conversation("rep@acme.test", ["c@client.test"], 4, "a")))
    connector = opened(MboxConnector, path=path, batch_size=3)
    batches = list(connector.sync(None))
    assert [r.message_id for b in batches for r in b.records] == [f"a{n}@mail.test" for n in range(4)]
    cursor = batches[-1].cursor
    assert [b.records for b in connector.sync(cursor)] == []
    with path.open("ab") as handle:
        handle.write(mbox_bytes(conversation("rep@acme.test", ["c@client.test"], 2, "b")))
    again = [r.message_id for b in connector.sync(cursor) for r in b.records]
    assert again == ["b0@mail.test", "b1@mail.test"]


def test_a_replaced_file_is_read_again_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "archive.mbox"
    path.write_bytes(mbox_bytes(conversation("rep@acme.test", ["c@client.test"], 3, "a")))
    cursor = list(opened(MboxConnector, path=path).sync(None))[-1].cursor
    replacement = tmp_path / "new.mbox"
    replacement.write_bytes(mbox_bytes(conversation("rep@acme.test", ["c@client.test"], 1, "z")))
    replacement.replace(path)
    assert [r.message_id for b in opened(MboxConnector, path=path).sync(cursor) for r in b.records] == ["z0@mail.test"]


class TestMboxContract(ConnectorContract):
    connector = MboxConnector

    @pytest.fixture(autouse=True)
    def _place(self, tmp_path: Path) -> None:
        self.sources = iter(tmp_path / f"source{n}.mbox" for n in itertools.count())

    def make(self, items: int, unreadable: int = 0) -> MboxConnector:
        path = next(self.sources)
        path.write_bytes(mbox_bytes(mails(items, unreadable)))
        return opened(MboxConnector, path=path, batch_size=BATCH_SIZE)

    def unreachable(self) -> MboxConnector:
        return opened(MboxConnector, path=next(self.sources))
