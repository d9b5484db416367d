"""Enron maildir messages as raw RFC 5322 header blocks with Gmail labels, to fill a fake Gmail mailbox.

Only the header block and a one-line body are kept: the connector reads addresses and dates, never
bodies, and small messages keep a benchmark's setup fast. The corpus may be absent; callers skip then.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tests.servers.enron_folders import converted_mail


def enron_gmail_messages(user_folder: Path, limit: int | None = None) -> Iterator[tuple[bytes, tuple[str, ...]]]:
    """Yields (raw message, labels): ("INBOX",) for the inbox, ("SENT",) for the sent folders; files without
    a Message-ID are skipped, as Gmail would have given them one and the corpus could no longer be matched."""
    for sent, raw in converted_mail(user_folder, _header_message, limit):
        yield raw, (("SENT",) if sent else ("INBOX",))


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
