"""Contact lists exported as CSV: messaging apps, phones, CRMs. A column mapping names the fields.

The mapping comes from the source's `columns` (each field a header name or a list of
them; emails and phones may hold several values separated by ';' or ','). Without a mapping,
common header names are tried case-insensitively. A file unchanged since the last sync (same
SHA-256) is not read again.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from connectors.base import BOOKS, FileConnector, FileSourceSettings
from connectors.errors import PermanentError
from connectors.records import AddressBookEntry, Batch, Record, Skipped

FIELDS = ("id", "name", "email", "phone", "organisation", "owner")
DEFAULT_HEADERS: dict[str, tuple[str, ...]] = {
    "id": ("id", "contact id", "record id", "uid"),
    "name": ("name", "full name", "display name", "contact name"),
    "email": ("email", "e-mail", "email address", "work email", "personal email"),
    "phone": ("phone", "mobile", "telephone", "phone number", "mobile phone", "whatsapp"),
    "organisation": ("organisation", "organization", "company", "account", "account name"),
    "owner": ("owner", "account owner", "contact owner", "owner email"),
}
_SPLIT = re.compile(r"[;,\n]+")


class CsvSettings(FileSourceSettings):
    """`columns` maps a field to the header name (or names) holding it in the export."""

    kind: Literal["csv"] = "csv"
    columns: dict[str, str | list[str]] = Field(default_factory=dict)
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        unknown = sorted(set(columns) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
        for name, value in columns.items():
            names = [value] if isinstance(value, str) else value
            if not names or not all(n.strip() for n in names):
                raise ValueError(f"{name!r} must be a header name or a list of them")
        return columns

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {encoding!r}") from None
        return encoding


@dataclass(frozen=True)
class ColumnMapping:
    """Header names per field; `required` fields were configured and must be in every file."""

    headers: dict[str, tuple[str, ...]]
    required: frozenset[str]

    @classmethod
    def of(cls, columns: dict[str, str | list[str]]) -> "ColumnMapping":
        configured = {name: (value,) if isinstance(value, str) else tuple(value) for name, value in columns.items()}
        return cls(DEFAULT_HEADERS | configured, frozenset(columns))

    def resolve(self, header: list[str], file: str) -> dict[str, list[int]]:
        """Column positions per field for one file's header row."""
        positions = {h.strip().lower(): i for i, h in reversed(list(enumerate(header)))}
        found: dict[str, list[int]] = {}
        for name, wanted in self.headers.items():
            found[name] = [positions[w.strip().lower()] for w in wanted if w.strip().lower() in positions]
            if name in self.required and len(found[name]) < len(wanted):
                missing = next(w for w in wanted if w.strip().lower() not in positions)
                raise PermanentError(f"csv file {file} has no column {missing!r} (mapped to {name})")
        if not found["email"] and not found["phone"]:
            raise PermanentError(f"csv file {file} has no email or phone column")
        return found


class CsvContactsConnector(FileConnector[CsvSettings]):
    kind = "csv"
    settings_model = CsvSettings
    yields = BOOKS
    what = "contact export"

    def __init__(self, settings: CsvSettings, batch_size: int = 500) -> None:
        super().__init__(settings, batch_size)
        self.columns = ColumnMapping.of(settings.columns)
        self.delimiter = settings.delimiter
        self.encoding = settings.encoding

    def files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            raise PermanentError(f"contact export path {self.path} does not exist")
        return sorted(p for p in self.path.rglob("*.csv") if p.is_file())

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        """A file in several batches keeps its place in the cursor (its digest and the rows stored),
        so a sync stopped between two of them resumes at the next row of the same file."""
        digests: dict[str, str] = dict((cursor or {}).get("files", {}))
        partial: dict[str, Any] = dict((cursor or {}).get("partial", {}))
        for path in self.files():
            key = path.name if path == self.path else str(path.relative_to(self.path))
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digests.get(key) == digest:
                continue
            rows = list(self._entries(key, data))
            first = int(partial["rows"]) if partial.get("file") == key and partial.get("digest") == digest else 0
            for start in range(first, len(rows), self.batch_size) or [first]:
                end = start + self.batch_size
                if end >= len(rows):
                    digests[key] = digest
                place = {} if end >= len(rows) else {"partial": {"file": key, "digest": digest, "rows": end}}
                chunk = rows[start:end]
                yield Batch([r for r in chunk if not isinstance(r, Skipped)], {"files": dict(digests), **place},
                            [r for r in chunk if isinstance(r, Skipped)])

    def _entries(self, book: str, data: bytes) -> Iterator[Record | Skipped]:
        rows = _rows(csv.reader(io.StringIO(self._decode(data), newline=""), delimiter=self.delimiter))
        header = next(rows, None)
        if isinstance(header, csv.Error):
            yield Skipped(book, f"unreadable header row: {header}")
            return
        if header is None:
            return
        columns = self.columns.resolve(header, book)
        for line, row in enumerate(rows, start=2):
            if isinstance(row, csv.Error):
                yield Skipped(f"{book}#{line}", f"unreadable row: {row}")
            elif not any(cell.strip() for cell in row):
                continue
            elif len(row) > len(header):
                yield Skipped(f"{book}#{line}", f"row has {len(row)} cells, header has {len(header)}")
            else:
                yield self._entry(book, line, row, columns)

    def _entry(
        self, book: str, line: int, row: list[str], columns: dict[str, list[int]]
    ) -> AddressBookEntry | Skipped:
        try:
            values = {name: [row[i].strip() for i in positions if i < len(row) and row[i].strip()]
                      for name, positions in columns.items()}
            return AddressBookEntry(
                book=book,
                entry_id=_first(values["id"]) or hashlib.sha1(repr(row).encode()).hexdigest()[:20],
                name=_first(values["name"]),
                emails=tuple(_split(values["email"])),
                phones=tuple(_split(values["phone"])),
                organisation=_first(values["organisation"]),
                channel=self.channel,
                owner=_first(values["owner"]),
            )
        except Exception as error:  # one row, whatever is wrong with it, never ends the file
            return Skipped(f"{book}#{line}", f"unreadable row: {type(error).__name__}: {error}"[:200])

    def _decode(self, data: bytes) -> str:
        try:
            return data.decode(self.encoding)
        except UnicodeDecodeError:
            return data.decode("cp1252", "replace")


def _rows(reader: Iterator[list[str]]) -> Iterator[list[str] | csv.Error]:
    """Each row, or the error that made it unreadable (a cell past the csv module's field size
    limit): the reader goes on with the next row, and so does the file."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield error


def _first(values: list[str]) -> str:
    return values[0] if values else ""


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in _SPLIT.split(value) if part.strip()]
