"""Writes each message as an .eml file: dry runs for review, or a pickup folder for another system."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Collection
from email.message import EmailMessage
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


class FileTransport:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def send(self, message: EmailMessage, already: Collection[str] = ()) -> None:
        """Written under a temporary name and renamed, so a reader never sees half a message. One file
        serves every recipient, so `already` changes nothing."""
        target = self.path_for(str(message["Message-ID"]))
        partial = target.with_suffix(".part")
        partial.write_bytes(message.as_bytes())
        os.replace(partial, target)

    def find_sent(self, message_id: str, sender: str) -> bool | None:
        return self.path_for(message_id).exists()

    def close(self) -> None:
        return None

    def path_for(self, message_id: str) -> Path:
        """A readable file name from the Message-ID, made unique by a short hash of it."""
        readable = _UNSAFE.sub("_", message_id.strip("<> "))[:80]
        digest = hashlib.sha256(message_id.encode()).hexdigest()[:10]
        return self.folder / f"{readable}-{digest}.eml"
