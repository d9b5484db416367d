"""A messaging-app CSV export configured as a personal source lands as personal sightings."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select

from config.policy import Policy
from config.sections import RepConfig
from config.settings import Settings
from connectors.csv_contacts import CsvSettings
from daemon.sync.engine import sync_source
from registry.models import ContactPoint, Rep, Sighting


def test_a_csv_source_with_a_column_mapping_syncs_into_personal_sightings(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "wechat.csv").write_text("Nickname\tPhone\n王伟\t+86 138 0013 8000\n", encoding="utf-8")
    source = CsvSettings(name="ann-wechat", path=tmp_path / "wechat.csv", owner="ann@acme.test", channel="personal",
                         delimiter="\t", columns={"name": "Nickname", "phone": "Phone"})
    settings = Settings(data_dir=tmp_path, reps=[RepConfig(email="ann@acme.test")], sources=[source])

    report = sync_source(engine, settings, Policy(company_domains=["acme.test"]), source)

    assert report.ok and report.entries == 1
    with engine.connect() as db:
        rows = db.execute(select(Rep.email, Sighting.channel, Sighting.name, ContactPoint.value)
                          .join(Rep, Rep.id == Sighting.rep_id)
                          .join(ContactPoint, ContactPoint.id == Sighting.contact_point_id)).all()
    assert rows == [("ann@acme.test", "personal", "王伟", "+8613800138000")]


def test_a_csv_source_whose_mapping_does_not_fit_the_file_fails_with_the_reason(engine: Engine, tmp_path: Path) -> None:
    (tmp_path / "crm.csv").write_text("Email\nx@y.example\n", encoding="utf-8")
    source = CsvSettings(name="crm", path=tmp_path / "crm.csv", columns={"email": "E-Mail Address"})
    settings = Settings(data_dir=tmp_path, sources=[source])

    report = sync_source(engine, settings, Policy(), source)

    assert report.error == "csv file crm.csv has no column 'E-Mail Address' (mapped to email)"
