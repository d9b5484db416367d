"""mbox files as exported from mail clients and archives (one file, or a folder of them).

The cursor keeps, per file, the byte offset after the last stored message and the file's
identity, so an append-only archive resumes where it stopped and a replaced file is reread.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from connectors.files import export_files
from connectors.headers import MalformedMessage, header_block, parse_headers
from connectors.records import Batch, Channel, Record, Skipped

MAX_MESSAGE_HEAD = 1 << 20


class MboxConnector:
    def __init__(self, path: Path, channel: Channel = "company", batch_size: int = 500) -> None:
        self.path = path
        self.channel = channel
        self.batch_size = batch_size

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        state: dict[str, dict[str, int]] = {k: dict(v) for k, v in (cursor or {}).get("files", {}).items()}
        for key, path in export_files(self.path, (), "mbox"):
            stat = path.stat()
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
        with path.open("rb") as handle:
            for offset, end, raw in _messages(handle, start):
                folder = path.stem
                try:
                    records.append(parse_headers(header_block(raw), folder, self.channel))
                except MalformedMessage as error:
                    skipped.append(Skipped(f"{key}@{offset}", str(error)))
                state[key] = {"offset": end, "inode": inode}
                if len(records) + len(skipped) >= self.batch_size:
                    yield Batch(records, {"files": _copy(state)}, skipped)
                    records, skipped = [], []
        state.setdefault(key, {"offset": start, "inode": inode})
        yield Batch(records, {"files": _copy(state)}, skipped)


def _messages(handle: BinaryIO, start: int) -> Iterator[tuple[int, int, bytes]]:
    """(start offset, end offset, header bytes) of each message from `start` on."""
    handle.seek(start)
    offset = start
    head: list[bytes] = []
    head_size = 0
    in_headers = started = False
    position = start
    previous_blank = True
    for line in iter(handle.readline, b""):
        if line.startswith(b"From ") and previous_blank:
            if started:
                yield offset, position, b"".join(head)
            offset, head, head_size, in_headers, started = position, [], 0, True, True
        elif in_headers:
            if line in (b"\n", b"\r\n") or head_size > MAX_MESSAGE_HEAD:
                in_headers = False
            else:
                head.append(line)
                head_size += len(line)
        previous_blank = line in (b"\n", b"\r\n")
        position += len(line)
    if started:
        yield offset, position, b"".join(head)


def _copy(state: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    return {k: dict(v) for k, v in state.items()}
