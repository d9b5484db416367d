"""Maildir and plain one-file-per-message folders (Maildir++, Dovecot, CMU-style archives).

The cursor keeps, per folder, the (ctime, name) of the last stored file. A rename updates
ctime and `cp -p` cannot fake it, so files moved in later are still found; re-reading a
moved file is harmless because ingest dedups by Message-ID.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from connectors.base import MAIL, FileConnector, FileSourceSettings
from connectors.errors import PermanentError
from connectors.headers import MAX_HEADER_BYTES, DateFallback, read_message
from connectors.records import Batch, Record, Skipped

SKIPPED_FOLDERS = re.compile(r"^(junk|spam|trash|deleted[ _-]?(items|messages)?|drafts?|tmp|outbox)$", re.I)
MAILDIR_PARTS = ("new", "cur")
_DELIVERY_SECONDS = re.compile(r"(\d{9,10})\.")


@dataclass(frozen=True)
class MailFile:
    folder: str
    path: str
    name: str
    ctime_ns: int

    @property
    def position(self) -> list[Any]:
        return [self.ctime_ns, self.name]


class MaildirSettings(FileSourceSettings):
    """`folders` limits the sync to those folders; junk, trash and drafts are never read."""

    kind: Literal["maildir"] = "maildir"
    folders: list[str] = Field(default_factory=list)
    exclude_folders: list[str] = Field(default_factory=list)


class MaildirConnector(FileConnector[MaildirSettings]):
    kind = "maildir"
    settings_model = MaildirSettings
    yields = MAIL
    what = "mail folder"

    def __init__(self, settings: MaildirSettings, batch_size: int = 500) -> None:
        super().__init__(settings, batch_size)
        self.only = {f.lower() for f in settings.folders}
        self.exclude = {f.lower() for f in settings.exclude_folders}

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        positions: dict[str, list[Any]] = dict((cursor or {}).get("folders", {}))
        stored = dict(positions)
        records: list[Record] = []
        skipped: list[Skipped] = []
        for folder, directories in self.folders():
            after = tuple(positions.get(folder, (-1, "")))
            try:
                mails = _files_after(folder, directories, after)
            except OSError as error:
                error.add_note(f"at {folder}")
                raise
            for mail in mails:
                self._read(mail, records, skipped)
                positions[folder] = mail.position
                if len(records) + len(skipped) >= self.batch_size:
                    yield Batch(records, {"folders": dict(positions)}, skipped)
                    records, skipped, stored = [], [], dict(positions)
        if records or skipped or positions != stored:
            yield Batch(records, {"folders": dict(positions)}, skipped)

    def folders(self) -> list[tuple[str, list[str]]]:
        """(folder name, directories holding its files), sorted so batches are deterministic."""
        if not self.path.is_dir():
            raise PermanentError(f"mail folder {self.path} does not exist")
        found: list[tuple[str, list[str]]] = []
        for directory, subdirs, files in os.walk(self.path):
            subdirs[:] = sorted(d for d in subdirs if d not in ("tmp", *MAILDIR_PARTS))
            relative = os.path.relpath(directory, self.path)
            name = _folder_name(relative)
            if not self._wanted(name):
                subdirs[:] = [] if relative != "." else subdirs
                continue
            parts = [os.path.join(directory, p) for p in MAILDIR_PARTS if os.path.isdir(os.path.join(directory, p))]
            if parts:
                found.append((name, parts))
            elif relative != "." and any(not f.startswith(".") for f in files):
                found.append((name, [directory]))
        return found

    def _wanted(self, name: str) -> bool:
        leaf = name.rsplit("/", 1)[-1].lower()
        if name.lower() in self.exclude or SKIPPED_FOLDERS.match(leaf):
            return False
        return not self.only or name.lower() in self.only

    def _read(self, mail: MailFile, records: list[Record], skipped: list[Skipped]) -> None:
        ref = f"{mail.folder}/{mail.name.split(':', 1)[0]}"
        headers, problems = read_message(partial(_read_head, mail.path), ref, mail.folder, self.channel,
                                         DateFallback("delivery", partial(_delivery_time, mail)))
        if headers is not None:
            records.append(headers)
        skipped += problems


def _folder_name(relative: str) -> str:
    if relative == ".":
        return "INBOX"
    return "/".join(part.lstrip(".") for part in Path(relative).parts).replace(".", "/")


def _files_after(folder: str, directories: list[str], after: tuple[Any, ...]) -> list[MailFile]:
    files: list[MailFile] = []
    for directory in directories:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                mail = MailFile(folder, entry.path, entry.name, entry.stat(follow_symlinks=False).st_ctime_ns)
                if (mail.ctime_ns, mail.name) > after:
                    files.append(mail)
    files.sort(key=lambda m: (m.ctime_ns, m.name))
    return files


def _read_head(path: str) -> bytes:
    """Read as far as the blank line that ends the headers, however far that is; past
    MAX_HEADER_BYTES stop, and the parser refuses a header section that long."""
    chunks: list[bytes] = []
    size = 0
    with open(path, "rb") as handle:
        while size <= MAX_HEADER_BYTES:
            chunk = handle.read(16384)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if _ends_headers(chunk) or (len(chunks) > 1 and _ends_headers(chunks[-2][-1:] + chunk[:1])):
                break
    return b"".join(chunks)


def _ends_headers(data: bytes) -> bool:
    """A blank line as email.parser sees one: it breaks lines at CR, LF and CRLF alike."""
    return b"\n\n" in data or b"\n\r" in data or b"\r\r" in data


def _delivery_time(mail: MailFile) -> datetime:
    """When the message was delivered: the seconds a Maildir file name starts with
    (`1234567890.M1P2.host:2,S`), else, for names like CMU's `1.`, the file's modification time."""
    named = _DELIVERY_SECONDS.match(mail.name)
    seconds = int(named.group(1)) if named else os.stat(mail.path).st_mtime
    return datetime.fromtimestamp(seconds, timezone.utc)
