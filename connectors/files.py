"""Export files on disk: one file, or every matching file below a folder, keyed for cursors."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.errors import PermanentError


def export_files(path: Path, suffixes: tuple[str, ...], what: str) -> list[tuple[str, Path]]:
    """(cursor key, file) pairs sorted by key; `suffixes` empty accepts every visible file."""
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise PermanentError(f"{what} path {path} does not exist")
    found = [p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
             and (not suffixes or p.suffix.lower() in suffixes)]
    return sorted((str(p.relative_to(path)), p) for p in found)


def changed_exports(
    path: Path, suffixes: tuple[str, ...], what: str, cursor: dict[str, Any] | None
) -> Iterator[tuple[str, bytes, dict[str, str]]]:
    """Files whose bytes changed since the cursor: (key, content, digests valid once it is stored).

    Address-book exports are snapshots, so an unchanged file (same SHA-256) is not read again.
    """
    digests: dict[str, str] = dict((cursor or {}).get("files", {}))
    for key, file in export_files(path, suffixes, what):
        data = file.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digests.get(key) != digest:
            digests[key] = digest
            yield key, data, dict(digests)
