"""vCard (.vcf) address-book exports from phones, Outlook, Google and Apple contacts.

Each card is parsed on its own so one broken card is skipped without losing the rest of the
file. A file unchanged since the last sync (same SHA-256) is not read again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Any, Literal

import vobject

from connectors.base import BOOKS, FileConnector, FileSourceSettings
from connectors.files import changed_exports
from connectors.records import AddressBookEntry, Batch, Record, Skipped

logging.getLogger("vobject.base").setLevel(logging.CRITICAL)


class VcardSettings(FileSourceSettings):
    kind: Literal["vcard"] = "vcard"


class VcardConnector(FileConnector[VcardSettings]):
    """One batch per changed file: an address book is a snapshot, stored whole or not at all."""

    kind = "vcard"
    settings_model = VcardSettings
    yields = BOOKS
    what = "address book"

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        for key, data, digests in changed_exports(self.path, (".vcf", ".vcard"), "address book", cursor):
            records: list[Record] = []
            skipped: list[Skipped] = []
            for index, block in enumerate(_cards(data)):
                entry = self._entry(key, index, block)
                if isinstance(entry, Skipped):
                    skipped.append(entry)
                else:
                    records.append(entry)
            if not records and not skipped and data.strip():
                skipped.append(Skipped(key, "no vCard found in file"))
            yield Batch(records, {"files": digests}, skipped)

    def _entry(self, book: str, index: int, block: bytes) -> AddressBookEntry | Skipped:
        try:
            card = vobject.readOne(_decode(block), ignoreUnreadable=True)
            return AddressBookEntry(
                book=book,
                entry_id=_first(card, "uid") or hashlib.sha1(block).hexdigest()[:20],
                name=_name(card),
                emails=tuple(_values(card, "email")),
                phones=tuple(_values(card, "tel")),
                organisation=_organisation(card),
                channel=self.channel,
            )
        except Exception as error:  # vobject raises many unrelated types on broken input
            return Skipped(f"{book}#{index}", f"unreadable vCard: {type(error).__name__}")


def _cards(data: bytes) -> list[bytes]:
    """Each block from a BEGIN:VCARD line to the next END:VCARD line (without its line break), in
    one pass: a file of BEGIN lines that never end must not cost a scan to its end for each one."""
    cards: list[bytes] = []
    start: int | None = None
    position = 0
    for line in data.splitlines(keepends=True):
        tag = line.rstrip().upper()
        if start is None and tag == b"BEGIN:VCARD":
            start = position
        elif start is not None and tag == b"END:VCARD":
            cards.append(data[start:position + len(line.rstrip(b"\n"))])
            start = None
        position += len(line)
    return cards


def _decode(block: bytes) -> str:
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError:
        return block.decode("cp1252", "replace")


def _values(card: Any, name: str) -> list[str]:
    return [str(item.value).strip() for item in card.contents.get(name, []) if str(item.value).strip()]


def _first(card: Any, name: str) -> str:
    values = _values(card, name)
    return values[0] if values else ""


def _name(card: Any) -> str:
    formatted = _first(card, "fn")
    if formatted:
        return formatted
    names = card.contents.get("n", [])
    if names and hasattr(names[0].value, "given"):
        return " ".join(p for p in (names[0].value.given, names[0].value.family) if p).strip()
    return ""


def _organisation(card: Any) -> str:
    orgs = card.contents.get("org", [])
    if not orgs:
        return ""
    value = orgs[0].value
    while isinstance(value, list):
        value = value[0] if value else ""
    return str(value).strip()
