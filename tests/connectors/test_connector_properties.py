"""No input can stop a source: Maildir, mbox, vCard and CSV connectors over generated files give a record
or a Skipped for every item and raise nothing, and no Date a Maildir message carries can drop it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.csv_contacts import CsvContactsConnector
from connectors.maildir import MaildirConnector
from connectors.mbox import MboxConnector
from connectors.records import AddressBookEntry, Batch, MessageHeaders, Skipped
from connectors.vcard import VcardConnector
from tests.support.header_strategies import header_bytes
from tests.support.sources import opened

EXAMPLES = settings(max_examples=100, deadline=None, database=None)
SEPARATOR = b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n"


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh folder for each generated example; pytest's tmp_path is one per test."""
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


def synced(batches: Iterator[Batch]) -> tuple[list[MessageHeaders | AddressBookEntry], list[Skipped]]:
    done = list(batches)
    return [r for b in done for r in b.records], [s for b in done for s in b.skipped]  # type: ignore[misc]


@EXAMPLES
@given(st.lists(header_bytes, min_size=1, max_size=6))
def test_a_maildir_of_arbitrary_files_gives_a_record_or_a_named_skip_for_each(files: list[bytes]) -> None:
    with scratch() as root:
        (root / "inbox").mkdir()
        for number, raw in enumerate(files):
            (root / "inbox" / f"{number}.").write_bytes(raw)
        records, skipped = synced(opened(MaildirConnector, path=root).sync(None))
        assert len(records) + len(skipped) == len(files)
        assert {s.ref for s in skipped} <= {f"inbox/{number}." for number in range(len(files))}


field_bytes = st.binary(max_size=80).map(lambda raw: raw.replace(b"\r", b" ").replace(b"\n", b" "))


@EXAMPLES
@given(field_bytes, st.lists(field_bytes, max_size=3))
def test_no_date_or_received_field_drops_a_maildir_message(date: bytes, received: list[bytes]) -> None:
    raw = (b"From: ann@client.test\r\nTo: bob@acme.test\r\nDate: " + date + b"\r\n"
           + b"".join(b"Received: by mx; " + stamp + b"\r\n" for stamp in received) + b"\r\nbody\r\n")
    with scratch() as root:
        (root / "inbox").mkdir()
        (root / "inbox" / "1700000000.M1P1.host:2,S").write_bytes(raw)
        [record], skipped = synced(opened(MaildirConnector, path=root).sync(None))
        assert skipped == [] and record.date is not None  # type: ignore[union-attr]
        assert record.date_source in ("header", "received", "delivery")  # type: ignore[union-attr]


def mboxrd(raw: bytes) -> bytes:
    """One message as an mbox holds it: a separator first, `From ` at a line start quoted, a blank line after."""
    lines = raw.split(b"\n")
    return SEPARATOR + b"\n".join(b">" + line if line.startswith(b"From ") else line for line in lines) + b"\n\n"


@EXAMPLES
@given(st.lists(header_bytes, min_size=1, max_size=6))
def test_an_mbox_of_arbitrary_messages_gives_a_record_or_a_named_skip_for_each(messages: list[bytes]) -> None:
    with scratch() as root:
        (root / "archive.mbox").write_bytes(b"".join(mboxrd(raw) for raw in messages))
        records, skipped = synced(opened(MboxConnector, path=root / "archive.mbox").sync(None))
        assert len(records) + len(skipped) == len(messages)
        assert all(s.ref.startswith("archive.mbox@") for s in skipped)


card_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=40)
card_properties = st.sampled_from(["FN", "N", "EMAIL", "EMAIL;TYPE=INTERNET", "TEL;CELL", "ORG", "UID", "VERSION",
                                   "ADR;TYPE=HOME", "X-BOGUS;CHARSET=x-unknown", "PHOTO;ENCODING=b",
                                   "NOTE;ENCODING=QUOTED-PRINTABLE", "item1.EMAIL", ""])
card_lines = st.one_of(
    st.builds("{}:{}".format, card_properties, card_text),
    st.sampled_from(["VERSION:2.1", "VERSION:3.0", "VERSION:4.0", "N:;;;;", "EMAIL:=E9=", "BEGIN:VCALENDAR",
                     "END:VEVENT", " folded", "\t", ""]),
    card_text,
).filter(lambda line: line.strip().upper() not in ("BEGIN:VCARD", "END:VCARD"))
cards = st.lists(card_lines, max_size=8).map(lambda lines: ["BEGIN:VCARD", *lines, "END:VCARD"])


@EXAMPLES
@given(st.lists(st.tuples(st.lists(card_lines, max_size=2), cards), min_size=1, max_size=5),
       st.sampled_from(["\r\n", "\n"]))
def test_an_address_book_of_arbitrary_cards_gives_an_entry_or_a_skip_for_each(
    book: list[tuple[list[str], list[str]]], newline: str
) -> None:
    text = newline.join(line for junk, card in book for line in [*junk, *card])
    with scratch() as root:
        (root / "phone.vcf").write_bytes(text.encode("utf-8", "surrogatepass"))
        entries, skipped = synced(opened(VcardConnector, path=root / "phone.vcf").sync(None))
        assert len(entries) + len(skipped) == len(book)


csv_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


@EXAMPLES
@given(csv_text, st.sampled_from([",", ";", "\t"]))
def test_a_contact_export_of_arbitrary_rows_gives_entries_and_skips_and_raises_nothing(
    rows: str, delimiter: str
) -> None:
    with scratch() as root:
        (root / "contacts.csv").write_text(delimiter.join(["name", "email", "phone"]) + "\n" + rows, encoding="utf-8")
        entries, skipped = synced(opened(CsvContactsConnector, path=root / "contacts.csv", delimiter=delimiter)
                                  .sync(None))
        assert all(isinstance(e, AddressBookEntry) for e in entries)
        assert all(s.ref.startswith("contacts.csv") for s in skipped)
