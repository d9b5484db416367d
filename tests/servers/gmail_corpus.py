"""Enron maildir messages as raw RFC 5322 header blocks with Gmail labels, to fill a fake Gmail mailbox.

Only the header block and a one-line body are kept: the connector reads addresses and dates, never
bodies, and small messages keep a benchmark's setup fast. The corpus may be absent; callers skip then.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

ENRON_MAILDIR = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "enron" / "maildir"
SENT_FOLDERS = {"sent", "sent_items", "_sent_mail"}
INBOX_FOLDERS = {"inbox"}


def enron_gmail_messages(user_folder: Path, limit: int | None = None) -> Iterator[tuple[bytes, tuple[str, ...]]]:
    """Yields (raw message, labels): ("INBOX",) for the inbox, ("SENT",) for the sent folders; files without
    a Message-ID are skipped, as Gmail would have given them one and the corpus could no longer be matched."""
    yielded = 0
    for folder in sorted(p for p in user_folder.iterdir() if p.is_dir() and p.name.lower() in SENT_FOLDERS | INBOX_FOLDERS):
        labels = ("SENT",) if folder.name.lower() in SENT_FOLDERS else ("INBOX",)
        for path in sorted(folder.iterdir(), key=_numeric_name):
            if limit is not None and yielded >= limit:
                return
            raw = _header_message(path)
            if raw is not None:
                yielded += 1
                yield raw, labels


def _numeric_name(path: Path) -> tuple[int, str]:
    """Maildir files are named '1.', '2.', ... so order them as numbers, not as text."""
    stem = path.name.rstrip(".")
    return (int(stem), "") if stem.isdigit() else (1 << 62, path.name)


def _header_message(path: Path) -> bytes | None:
    """The file's header block and the first non-blank body line, with CRLF line ends as Gmail stores raw mail."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head, _, body = data.replace(b"\r\n", b"\n").partition(b"\n\n")
    if not any(line.lower().startswith(b"message-id:") for line in head.split(b"\n")):
        return None
    first_line = next((line.strip() for line in body.split(b"\n") if line.strip()), b"(no text)")
    return head.replace(b"\n", b"\r\n") + b"\r\n\r\n" + first_line + b"\r\n"
