"""vCard exports from real address-book applications, and broken cards among good ones."""

import itertools
from pathlib import Path

import pytest

from connectors.vcard import VcardConnector
from tests.conftest import CORPUS
from tests.connectors.contract import BATCH_SIZE, ConnectorContract
from tests.support.sources import opened

SAMPLES = CORPUS / "samples" / "vcard"
BROKEN_CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nBEGIN:VCARD\r\nN;;;\r\nEND:VCARD\r\n"


def test_reads_cards_and_skips_a_broken_one_without_losing_its_neighbours(tmp_path: Path) -> None:
    book = tmp_path / "phone.vcf"
    book.write_text(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Li Wei\r\nEMAIL:li.wei@kunde.cn\r\nTEL:+86 10 1234 5678\r\nEND:VCARD\r\n"
        + BROKEN_CARD +
        "BEGIN:VCARD\r\nVERSION:2.1\r\nN:Muller;Anna\r\nORG:Muller GmbH\r\nTEL;CELL:030 1234567\r\nEND:VCARD\r\n",
        encoding="utf-8",
    )
    [batch] = list(opened(VcardConnector, path=book, channel="personal").sync(None))
    assert [(e.name, e.emails, e.organisation) for e in batch.records] == [
        ("Li Wei", ("li.wei@kunde.cn",), ""), ("Anna Muller", (), "Muller GmbH")]
    assert all(e.channel == "personal" for e in batch.records)
    assert len(batch.skipped) == 1
    assert list(opened(VcardConnector, path=book).sync(batch.cursor)) == []


def test_reads_exports_of_outlook_google_apple_and_android() -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"vCard samples not found at {SAMPLES}")
    entries = [e for b in opened(VcardConnector, path=SAMPLES).sync(None) for e in b.records]
    books = {e.book for e in entries}
    assert {"John_Doe_ANDROID.vcf", "John_Doe_GMAIL.vcf", "John_Doe_IPHONE.vcf", "outlook-2007.vcf"} <= books
    assert any("john.doe@ibm.com" in e.emails for e in entries)


def test_cards_whose_end_lines_are_mangled_are_read_in_one_pass(tmp_path: Path) -> None:
    """Every BEGIN:VCARD without an END:VCARD after it once cost a scan to the end of the file."""
    book = tmp_path / "export.vcf"
    book.write_bytes(b"BEGIN:VCARD\r\nFN:Li Wei\r\nEMAIL:li.wei@kunde.cn\r\nEND VCARD\r\n" * 20_000)
    [batch] = list(opened(VcardConnector, path=book).sync(None))
    assert (batch.records, [(s.ref, s.reason) for s in batch.skipped]) == (
        [], [("export.vcf", "no vCard found in file")])


class TestVcardContract(ConnectorContract):
    """One card per file, so that a source of several items comes in several batches."""

    connector = VcardConnector

    @pytest.fixture(autouse=True)
    def _place(self, tmp_path: Path) -> None:
        self.sources = iter(tmp_path / f"source{n}" for n in itertools.count())

    def make(self, items: int, unreadable: int = 0) -> VcardConnector:
        folder = next(self.sources)
        folder.mkdir()
        for n in range(items):
            (folder / f"{n:02}.vcf").write_text(f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-{n}\r\nFN:Contact {n}\r\n"
                                               f"EMAIL:c{n}@client.test\r\nEND:VCARD\r\n", encoding="utf-8")
        for n in range(unreadable):
            (folder / f"broken{n}.vcf").write_text(BROKEN_CARD, encoding="utf-8")
        return opened(VcardConnector, path=folder, batch_size=BATCH_SIZE)

    def unreachable(self) -> VcardConnector:
        return opened(VcardConnector, path=next(self.sources))
