"""mbox files as exported from mail clients and archives (one file, or a folder of them).

The cursor keeps, per file, the byte offset after the last stored message and the file's
identity, so an append-only archive resumes where it stopped and a replaced file is reread.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Literal, NamedTuple

from connectors.base import MAIL, FileConnector, FileSourceSettings
from connectors.files import export_files
from connectors.headers import MAX_HEADER_BYTES, DateFallback, parse_date, read_message
from connectors.records import Batch, Record, Skipped


class _Message(NamedTuple):
    """One message of an mbox file: where it starts and ends, its `From ` line, its header lines."""

    offset: int
    end: int
    separator: bytes
    head: bytes


class MboxSettings(FileSourceSettings):
    kind: Literal["mbox"] = "mbox"


class MboxConnector(FileConnector[MboxSettings]):
    kind = "mbox"
    settings_model = MboxSettings
    yields = MAIL
    what = "mbox"

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        state: dict[str, dict[str, int]] = {k: dict(v) for k, v in (cursor or {}).get("files", {}).items()}
        for key, path in export_files(self.path, (), "mbox"):
            try:
                stat = path.stat()
            except OSError as error:
                error.add_note(f"at {key}")
                raise
            known = state.get(key, {})
            start = known.get("offset", 0)
            if known.get("inode") != stat.st_ino or stat.st_size < start:
                start = 0
            if start == stat.st_size and known:
                continue
            yield from self._read_file(path, key, start, stat.st_ino, state)

    def _read_file(
        self, path: Path, key: str, start: int, inode: int, state: dict[str, dict[str, int]]
    ) -> Iterator[Batch]:
        records: list[Record] = []
        skipped: list[Skipped] = []
        position = start
        try:
            with path.open("rb") as handle:
                for message in _messages(handle, start):
                    headers, problems = read_message(
                        message.head, f"{key}@{message.offset}", path.stem, self.channel,
                        DateFallback("delivery", partial(_separator_date, message.separator)))
                    if headers is not None:
                        records.append(headers)
                    skipped += problems
                    position = message.end
                    state[key] = {"offset": position, "inode": inode}
                    if len(records) + len(skipped) >= self.batch_size:
                        yield Batch(records, {"files": _copy(state)}, skipped)
                        records, skipped = [], []
        except Exception as error:
            error.add_note(f"at {key}@{position}")
            raise
        state.setdefault(key, {"offset": start, "inode": inode})
        yield Batch(records, {"files": _copy(state)}, skipped)


def _messages(handle: BinaryIO, start: int) -> Iterator[_Message]:
    """Each message from `start` on. Its head keeps at most MAX_HEADER_BYTES and one line, so a
    longer header section is refused by the parser rather than read cut mid-field."""
    handle.seek(start)
    offset = position = start
    separator = b""
    head: list[bytes] = []
    head_size = 0
    in_headers = started = False
    previous_blank = True
    for line in iter(handle.readline, b""):
        if line.startswith(b"From ") and previous_blank:
            if started:
                yield _Message(offset, position, separator, b"".join(head))
            offset, separator, head, head_size, in_headers, started = position, line, [], 0, True, True
        elif in_headers:
            if line in (b"\n", b"\r\n"):
                in_headers = False
            elif head_size <= MAX_HEADER_BYTES:
                head.append(line)
                head_size += len(line)
        previous_blank = line in (b"\n", b"\r\n")
        position += len(line)
    if started:
        yield _Message(offset, position, separator, b"".join(head))


def _separator_date(separator: bytes) -> datetime | None:
    """The date the delivering system wrote on the `From sender asctime-date` line."""
    parts = separator.split(None, 2)
    return parse_date(parts[2].decode("ascii", "replace")) if len(parts) == 3 else None


def _copy(state: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {k: dict(v) for k, v in state.items()}
