"""The Inbox and Sent folders of an Enron user, file by file, for the fakes that serve them as cloud
mail (Graph message JSON, Gmail raw messages). The corpus may be absent; callers skip then."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

ENRON_MAILDIR = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "enron" / "maildir"
SENT_FOLDERS = {"sent", "sent_items", "_sent_mail"}
INBOX_FOLDERS = {"inbox"}
T = TypeVar("T")


def converted_mail(user_folder: Path, convert: Callable[[Path], T | None], limit: int | None = None) -> Iterator[tuple[bool, T]]:
    """(sent?, `convert(file)`) for each file of the user's inbox and sent folders that converts, at most `limit`."""
    yielded = 0
    for folder in sorted(p for p in user_folder.iterdir() if p.is_dir() and p.name.lower() in SENT_FOLDERS | INBOX_FOLDERS):
        for path in sorted(folder.iterdir(), key=_numeric_name):
            if limit is not None and yielded >= limit:
                return
            found = convert(path)
            if found is not None:
                yielded += 1
                yield folder.name.lower() in SENT_FOLDERS, found


def _numeric_name(path: Path) -> tuple[int, str]:
    """Maildir files are named '1.', '2.', ... so order them as numbers, not as text."""
    stem = path.name.rstrip(".")
    return (int(stem), "") if stem.isdigit() else (1 << 62, path.name)
