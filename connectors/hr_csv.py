"""HR leaver and joiner lists: CSV files (email, action, effective date) dropped in a watched folder.

Each file is one batch. A file is moved to the `processed/` subfolder only when the consumer asks
for the next batch, i.e. after it has acted on this one, so a crash in between leaves the file to
be read again; every row has a stable event id (file digest and line) so the consumer can make
sure each row acts once even then. A file another process moved first (a second daemon watching
the same folder) is passed over.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterator
from datetime import date, datetime, time, timezone
from pathlib import Path
from typing import Any, Literal

from connectors.base import DIRECTORY, FileConnector, FileSourceSettings
from connectors.errors import PermanentError
from connectors.records import Batch, DirectoryEvent, DirectoryEventKind, Record, Skipped

ACTIONS: dict[str, DirectoryEventKind] = {
    "deactivate": "deactivated", "deactivated": "deactivated", "leaver": "deactivated", "leave": "deactivated",
    "terminated": "deactivated", "depart": "deactivated", "departed": "deactivated",
    "reactivate": "reactivated", "reactivated": "reactivated", "rehire": "reactivated", "rehired": "reactivated",
    "create": "created", "created": "created", "joiner": "created", "hire": "created",
}
_COLUMNS = {"email": "email", "action": "action", "effective_date": "effective", "effective": "effective",
            "name": "name", "manager": "manager", "manager_email": "manager"}


class HrCsvSettings(FileSourceSettings):
    """`path` is the watched folder; files acted on move to `processed` (default: its processed/)."""

    kind: Literal["hr_csv"] = "hr_csv"
    processed: Path | None = None


class HrCsvConnector(FileConnector[HrCsvSettings]):
    """Read by the departure job from `service.hr_folder`, not synced as a source: its records act
    on reps instead of being stored."""

    kind = "hr_csv"
    settings_model = HrCsvSettings
    yields = DIRECTORY
    what = "HR folder"

    def __init__(self, settings: HrCsvSettings, batch_size: int = 500) -> None:
        super().__init__(settings, batch_size)
        self.processed = settings.processed or settings.path / "processed"

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        if not self.path.is_dir():
            raise PermanentError(f"HR folder {self.path} does not exist")
        done: dict[str, str] = dict((cursor or {}).get("files", {}))
        for path in sorted(p for p in self.path.iterdir() if p.suffix.lower() == ".csv" and p.is_file()):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest not in done:
                records, skipped = parse_hr_csv(data, f"hr-csv:{digest[:16]}", path.name)
                done[digest] = path.name
                yield Batch(records, {"files": dict(done)}, skipped)
            self._archive(path)

    def _archive(self, path: Path) -> None:
        self.processed.mkdir(parents=True, exist_ok=True)
        target = self.processed / path.name
        if target.exists():
            target = self.processed / f"{path.stem}.{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}{path.suffix}"
        try:
            path.rename(target)
        except FileNotFoundError:
            return


def parse_hr_csv(data: bytes, event_prefix: str, ref: str) -> tuple[list[Record], list[Skipped]]:
    """Rows as DirectoryEvents; a row without a usable email, action or date is skipped with the reason."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [Skipped(ref, "not UTF-8 text")]
    reader = csv.DictReader(io.StringIO(text))
    fields = {name: _COLUMNS.get(name.strip().lower().replace(" ", "_").replace("-", "_"), "")
              for name in reader.fieldnames or []}
    if not {"email", "action"} <= set(fields.values()):
        return [], [Skipped(ref, "needs the columns email and action (and optionally effective_date)")]
    records: list[Record] = []
    skipped: list[Skipped] = []
    for row in reader:
        line = f"{ref}:{reader.line_num}"
        values = {fields[k]: (v or "").strip() for k, v in row.items() if k is not None and fields.get(k)}
        kind = ACTIONS.get(values.get("action", "").lower())
        if kind is None:
            skipped.append(Skipped(line, f"unknown action {values.get('action', '')!r}"))
            continue
        if "@" not in values.get("email", ""):
            skipped.append(Skipped(line, "no email address"))
            continue
        try:
            effective = _moment(values.get("effective", ""))
        except ValueError:
            skipped.append(Skipped(line, f"effective date {values['effective']!r} is not an ISO date"))
            continue
        records.append(DirectoryEvent(event_id=f"{event_prefix}:{reader.line_num}", kind=kind,
                                      email=values["email"].lower(), name=values.get("name", ""),
                                      manager_email=values.get("manager", "").lower(), effective=effective))
    return records, skipped


def _moment(text: str) -> datetime | None:
    """An ISO date (midnight UTC) or date-time (UTC when no offset is given); empty means 'now'."""
    if not text:
        return None
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), time(), timezone.utc)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
