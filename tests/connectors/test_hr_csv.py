"""HR CSV files: rows become directory events; a file leaves the folder only after it was acted on."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connectors.errors import PermanentError
from connectors.hr_csv import HrCsvConnector
from connectors.records import DirectoryEvent
from tests.connectors.contract import BATCH_SIZE, ConnectorContract
from tests.support.sources import opened

LEAVERS = """\ufeffEmail,Action,Effective Date
alice@corp.example,leaver,2026-07-10
Bob@Corp.example,rehire,
carol@corp.example,promoted,2026-07-01
,deactivate,2026-07-01
dave@corp.example,deactivate,10/07/2026
erin@corp.example,deactivate,2026-07-10T17:30:00+02:00
"""


def test_rows_become_events_and_bad_rows_are_skipped_with_reasons(tmp_path: Path) -> None:
    (tmp_path / "leavers.csv").write_text(LEAVERS, encoding="utf-8")
    [batch] = list(opened(HrCsvConnector, path=tmp_path).sync(None))
    events = [r for r in batch.records if isinstance(r, DirectoryEvent)]
    assert [(e.kind, e.email, e.effective) for e in events] == [
        ("deactivated", "alice@corp.example", datetime(2026, 7, 10, tzinfo=timezone.utc)),
        ("reactivated", "bob@corp.example", None),
        ("deactivated", "erin@corp.example", datetime(2026, 7, 10, 15, 30, tzinfo=timezone.utc)),
    ]
    assert len({e.event_id for e in events}) == 3
    assert [s.reason for s in batch.skipped] == [
        "unknown action 'promoted'", "no email address", "effective date '10/07/2026' is not an ISO date"]


def test_a_file_moves_to_processed_only_after_the_consumer_moves_on(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("email,action\nalice@corp.example,deactivate\n", encoding="utf-8")
    batches = opened(HrCsvConnector, path=tmp_path).sync(None)
    first = next(batches)
    assert (tmp_path / "a.csv").exists()
    assert list(batches) == []
    assert not (tmp_path / "a.csv").exists() and (tmp_path / "processed" / "a.csv").exists()
    (tmp_path / "a.csv").write_text("email,action\nalice@corp.example,deactivate\n", encoding="utf-8")
    again = list(opened(HrCsvConnector, path=tmp_path).sync(None))
    assert again[0].records[0].event_id == first.records[0].event_id  # type: ignore[union-attr]
    assert len(list((tmp_path / "processed").iterdir())) == 2


def test_two_watchers_of_one_folder_act_on_a_file_once_between_them_and_neither_fails(tmp_path: Path) -> None:
    """Two daemons watch the same HR folder: whichever reads a file first archives it; the other,
    which listed it a moment earlier, passes it over."""
    (tmp_path / "a.csv").write_text("email,action\nalice@corp.example,deactivate\n", encoding="utf-8")
    (tmp_path / "b.csv").write_text("email,action\nbob@corp.example,deactivate\n", encoding="utf-8")
    slow = opened(HrCsvConnector, path=tmp_path).sync(None)
    first = next(slow)
    fast = list(opened(HrCsvConnector, path=tmp_path).sync(None))
    rest = list(slow)
    assert [e.email for e in first.records] == ["alice@corp.example"]  # type: ignore[union-attr]
    assert [e.email for b in fast for e in b.records] == ["alice@corp.example", "bob@corp.example"]  # type: ignore[union-attr]
    assert rest == []
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == ["a.csv", "b.csv"]


def test_a_file_already_in_the_cursor_is_only_archived(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("email,action\nalice@corp.example,deactivate\n", encoding="utf-8")
    [batch] = list(opened(HrCsvConnector, path=tmp_path).sync(None))
    (tmp_path / "a.csv").write_bytes((tmp_path / "processed" / "a.csv").read_bytes())
    assert list(opened(HrCsvConnector, path=tmp_path).sync(batch.cursor)) == []
    assert not (tmp_path / "a.csv").exists()


def test_missing_columns_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("mail,what\nalice@corp.example,deactivate\n", encoding="utf-8")
    [batch] = list(opened(HrCsvConnector, path=tmp_path).sync(None))
    assert batch.records == [] and "needs the columns email and action" in batch.skipped[0].reason
    with pytest.raises(PermanentError, match="does not exist"):
        list(opened(HrCsvConnector, path=tmp_path / "absent").sync(None))


class TestHrCsvContract(ConnectorContract):
    """One leaver per file: each file is a batch, archived only once the next batch is asked for."""

    connector = HrCsvConnector

    @pytest.fixture(autouse=True)
    def _place(self, tmp_path: Path) -> None:
        self.sources = iter(tmp_path / f"source{n}" for n in itertools.count())

    def make(self, items: int, unreadable: int = 0) -> HrCsvConnector:
        folder = next(self.sources)
        folder.mkdir()
        for n in range(items):
            (folder / f"{n:02}.csv").write_text(f"email,action\nrep{n}@corp.example,leaver\n", encoding="utf-8")
        for n in range(unreadable):
            (folder / f"unreadable{n}.csv").write_text("email,action\nrep@corp.example,promoted\n", encoding="utf-8")
        return opened(HrCsvConnector, path=folder, batch_size=BATCH_SIZE)

    def unreachable(self) -> HrCsvConnector:
        return opened(HrCsvConnector, path=next(self.sources))
