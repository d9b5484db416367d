"""CSV contact exports: column mappings, several values per cell, unchanged files, broken rows."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from pydantic import ValidationError

from connectors.csv_contacts import CsvContactsConnector, CsvSettings
from connectors.errors import PermanentError
from connectors.records import AddressBookEntry
from tests.connectors.contract import BATCH_SIZE, ConnectorContract
from tests.support.sources import opened

WHATSAPP_EXPORT = (
    "Display Name;Mobile;Notes\n"
    "Li Wei;+86 138 0013 8000;met at fair\n"
    ";;\n"
    "Anna Schmidt;+49 151 23456789, +49 30 1234567;\n"
)
CRM_EXPORT = (
    "Record ID,Full name,Work email,Private email,Company,Account owner\n"
    "17,Jane Roe,jane@acme.example,jane.roe@gmail.com,Acme Ltd,alice@corp.example\n"
    "18,Joe Bloggs,joe@globex.example,,Globex,\n"
    "19,Too,many,cells,here,x,y\n"
)


def entries(connector: CsvContactsConnector) -> list[AddressBookEntry]:
    return [r for batch in connector.sync(None) for r in batch.records]  # type: ignore[misc]


def test_a_messaging_app_export_with_a_mapping_yields_personal_entries(tmp_path: Path) -> None:
    (tmp_path / "whatsapp.csv").write_text(WHATSAPP_EXPORT, encoding="utf-8")
    connector = opened(CsvContactsConnector, path=tmp_path / "whatsapp.csv", channel="personal", delimiter=";",
                       columns={"name": "Display Name", "phone": "Mobile"})

    found = entries(connector)

    assert [(e.name, e.phones, e.channel) for e in found] == [
        ("Li Wei", ("+86 138 0013 8000",), "personal"),
        ("Anna Schmidt", ("+49 151 23456789", "+49 30 1234567"), "personal"),
    ]
    assert found[0].entry_id != found[1].entry_id


def test_a_crm_export_carries_ids_organisations_owners_and_every_mapped_email(tmp_path: Path) -> None:
    (tmp_path / "crm.csv").write_text(CRM_EXPORT, encoding="utf-8")
    connector = opened(CsvContactsConnector, path=tmp_path / "crm.csv", columns={
        "id": "Record ID", "name": "Full name", "email": ["Work email", "Private email"],
        "organisation": "Company", "owner": "Account owner"})

    batches = list(connector.sync(None))
    found = [r for b in batches for r in b.records]

    assert [(e.entry_id, e.emails, e.organisation, e.owner) for e in found] == [  # type: ignore[union-attr]
        ("17", ("jane@acme.example", "jane.roe@gmail.com"), "Acme Ltd", "alice@corp.example"),
        ("18", ("joe@globex.example",), "Globex", ""),
    ]
    assert [s.ref for b in batches for s in b.skipped] == ["crm.csv#4"]


def test_common_headers_are_found_without_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "phone.csv").write_text("Name,E-mail,Phone\nMia,mia@x.example,+1 415 555 0101\n", encoding="utf-8")

    [mia] = entries(opened(CsvContactsConnector, path=tmp_path / "phone.csv"))

    assert (mia.name, mia.emails, mia.phones) == ("Mia", ("mia@x.example",), ("+1 415 555 0101",))


def test_an_unchanged_file_is_not_read_again(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("email\nx@a.example\n", encoding="utf-8")
    connector = opened(CsvContactsConnector, path=tmp_path)
    [first] = list(connector.sync(None))

    assert list(connector.sync(first.cursor)) == []
    (tmp_path / "a.csv").write_text("email\nx@a.example\ny@a.example\n", encoding="utf-8")
    assert [len(b.records) for b in connector.sync(first.cursor)] == [2]


def test_large_files_come_in_batches_and_only_the_last_marks_the_file_done(tmp_path: Path) -> None:
    (tmp_path / "big.csv").write_text("email\n" + "".join(f"u{n}@big.example\n" for n in range(5)), encoding="utf-8")

    batches = list(opened(CsvContactsConnector, path=tmp_path / "big.csv", batch_size=2).sync(None))

    assert [len(b.records) for b in batches] == [2, 2, 1]
    assert [bool(b.cursor["files"]) for b in batches] == [False, False, True]


def test_a_mapped_column_missing_from_a_file_fails_the_source_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("email\nx@a.example\n", encoding="utf-8")

    with pytest.raises(PermanentError, match="has no column 'Mail'"):
        entries(opened(CsvContactsConnector, path=tmp_path / "a.csv", columns={"email": "Mail"}))


@pytest.mark.parametrize(("settings", "message"), [
    ({"columns": {"fax": "Fax"}}, "unknown field 'fax'"),
    ({"columns": {"email": [" "]}}, "must be a header name"),
    ({"columns": {"email": 3}}, "valid string"),
    ({"delimiter": ";;"}, "at most 1 character"),
    ({"encoding": "klingon"}, "unknown encoding 'klingon'"),
])
def test_a_wrong_mapping_is_a_config_error_before_any_file_is_read(settings: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CsvSettings(name="crm", path=Path("crm.csv"), **settings)


def test_a_file_without_email_or_phone_column_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("name\nMia\n", encoding="utf-8")

    with pytest.raises(PermanentError, match="no email or phone column"):
        entries(opened(CsvContactsConnector, path=tmp_path / "a.csv"))


def test_a_row_the_csv_module_cannot_read_is_skipped_and_the_rows_after_it_are_read(tmp_path: Path) -> None:
    notes = "x" * 200_000
    (tmp_path / "crm.csv").write_text(f'name,email,notes\nAnn,ann@client.test,\nBen,ben@buyer.test,"{notes}"\n'
                                      "Cy,cy@client.test,\n", encoding="utf-8")

    batches = list(opened(CsvContactsConnector, path=tmp_path / "crm.csv").sync(None))

    assert [e.name for b in batches for e in b.records] == ["Ann", "Cy"]  # type: ignore[union-attr]
    assert [(s.ref, s.reason) for b in batches for s in b.skipped] == [
        ("crm.csv#3", "unreadable row: field larger than field limit (131072)")]


class TestCsvContract(ConnectorContract):
    connector = CsvContactsConnector

    @pytest.fixture(autouse=True)
    def _place(self, tmp_path: Path) -> None:
        self.sources = iter(tmp_path / f"source{n}" for n in itertools.count())

    def make(self, items: int, unreadable: int = 0) -> CsvContactsConnector:
        folder = next(self.sources)
        folder.mkdir()
        path = folder / "contacts.csv"
        rows = [f"c{n},Contact {n},c{n}@client.test" for n in range(items)] + ["x,too,many,cells"] * unreadable
        path.write_text("\n".join(["id,name,email", *rows]) + "\n", encoding="utf-8")
        return opened(CsvContactsConnector, path=folder, batch_size=BATCH_SIZE)

    def unreachable(self) -> CsvContactsConnector:
        return opened(CsvContactsConnector, path=next(self.sources))
