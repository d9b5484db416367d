"""The coverage exports: one documented row per customer, written through the CLI, always audited."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from daemon.cli.app import app
from policies.identity import KnownRep
from registry.models import AuditEvent, CoverageSnapshot, Customer
from reports.coverage import CSV_FIELDS, build_report, export_report, render_csv, render_json
from tests.support.handbuilt import NOW, POLICY, HandBuilt, entry, rep

ALICE, BOB = rep("alice"), rep("bob")


@pytest.fixture
def world(engine: Engine) -> HandBuilt:
    world = HandBuilt(engine, reps=(KnownRep(ALICE, "Alice Smith"), KnownRep(BOB, "Bob Jones")))
    world.conversation(ALICE, "buyer@acme.example", 3, days_ago=10)
    world.mail(BOB, "cfo@acme.example", days_ago=12)
    world.mail(ALICE, "ops@globex.example", days_ago=30, cc="alice.smith@gmail.com")
    world.address_book(BOB, "personal", entry("9", "Dana Lee", ("dana@umbrella.example",)))
    return world


def audit_events(engine: Engine) -> list[tuple[str, str, dict]]:
    with engine.connect() as db:
        return [tuple(r) for r in db.execute(select(AuditEvent.action, AuditEvent.entity_id, AuditEvent.detail))]


def test_json_export_has_one_row_per_customer_with_its_evidence_and_is_audited(world: HandBuilt, tmp_path: Path) -> None:
    report = build_report(world.engine, POLICY, NOW)

    export_report(world.engine, report, "json", tmp_path / "c.json", "cli:auditor")

    data = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    rows = {row["customer"]: row for row in data["customers"]}
    assert data["summary"]["covered"] == 1 and data["lookback_days"] == POLICY.lookback_days
    assert rows["acme.example"] == {
        "customer_id": rows["acme.example"]["customer_id"], "customer": "acme.example", "name": "acme.example",
        "kind": "organisation", "class": "covered", "owner": None, "pool": False, "reps": [ALICE, BOB],
        "interactions": 4, "last_company_contact": "2026-06-20T14:00:00+00:00", "personal_sightings": [],
        "personal_relays": 0, "personal_messages": 0, "personal_requests": 0, "at_risk": False, "colleagues": 0,
    }
    assert rows["globex.example"]["personal_relays"] == 1
    assert rows["umbrella.example"]["class"] == "personal-channel-only"
    assert rows["umbrella.example"]["personal_sightings"] == [
        {"rep": BOB, "source": f"{BOB}-personal-vcard", "name": "Dana Lee", "entry": "phone#9"}]
    assert [r["rep"] for r in data["reps"] if r["flagged"]] == [ALICE]
    assert audit_events(world.engine) == [("report.exported", "coverage", {
        "format": "json", "rows": 3, "path": str(tmp_path / "c.json"), "as_of": NOW.isoformat()})]


def test_csv_export_uses_the_documented_columns(world: HandBuilt) -> None:
    rows = list(csv.DictReader(io.StringIO(render_csv(build_report(world.engine, POLICY, NOW)))))

    assert tuple(rows[0]) == CSV_FIELDS
    by_customer = {r["customer"]: r for r in rows}
    assert by_customer["acme.example"]["reps"] == f"{ALICE}; {BOB}"
    assert by_customer["globex.example"]["class"] == "single-threaded"
    assert by_customer["umbrella.example"]["personal_sightings"] == f"{BOB} via {BOB}-personal-vcard (Dana Lee)"
    assert by_customer["umbrella.example"]["last_company_contact"] == ""


def config_for(tmp_path: Path, registry_target: tuple[str, str | None]) -> Path:
    url, schema = registry_target
    config = tmp_path / "custody.toml"
    config.write_text(f'data_dir = "data"\ndatabase_url = "{url}"\ndatabase_schema = "{schema or ""}"\n'
                      f'policy_file = "policy.yaml"\n', encoding="utf-8")
    (tmp_path / "policy.yaml").write_text(POLICY.model_dump_json(), encoding="utf-8")
    return config


@pytest.mark.parametrize("fmt", ["html", "csv", "json"])
def test_the_report_command_writes_each_format_and_records_the_export(
        world: HandBuilt, tmp_path: Path, registry_target: tuple[str, str | None], fmt: str) -> None:
    config = config_for(tmp_path, registry_target)
    out = tmp_path / f"out.{fmt}"

    result = CliRunner().invoke(app, ["-c", str(config), "report", "coverage", "--format", fmt, "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0
    assert ("report.exported", "coverage") in [e[:2] for e in audit_events(world.engine)]
    assert [e[2]["rows"] for e in audit_events(world.engine) if e[0] == "report.exported"] == [3]


def test_the_report_goes_to_stdout_with_out_dash(world: HandBuilt, tmp_path: Path,
                                                 registry_target: tuple[str, str | None]) -> None:
    config = config_for(tmp_path, registry_target)

    result = CliRunner().invoke(app, ["-c", str(config), "report", "coverage", "-f", "csv", "-o", "-"])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == ",".join(CSV_FIELDS)


def test_pool_recycle_command_clears_owners_of_dormant_customers(
        world: HandBuilt, tmp_path: Path, registry_target: tuple[str, str | None]) -> None:
    world.mail(BOB, "old@sleepy.example", days_ago=(datetime.now(timezone.utc) - NOW).days + 500)
    world.set_owner("sleepy.example", BOB)
    config = config_for(tmp_path, registry_target)

    result = CliRunner().invoke(app, ["-c", str(config), "pool", "recycle"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recycled"] >= 1
    with world.engine.connect() as db:
        assert db.execute(select(Customer.pool, Customer.owner_rep_id)
                          .where(Customer.key == "sleepy.example")).one() == (True, None)


def test_a_report_as_of_a_past_day_classifies_that_day_and_stores_no_snapshot(
        world: HandBuilt, tmp_path: Path, registry_target: tuple[str, str | None]) -> None:
    """An audit of last quarter sees the customers as they were then; today's trend is left alone."""
    config = config_for(tmp_path, registry_target)

    past = CliRunner().invoke(app, ["-c", str(config), "report", "coverage", "-f", "json", "-o", "-",
                                    "--as-of", NOW.date().isoformat()])
    today = CliRunner().invoke(app, ["-c", str(config), "report", "coverage", "-f", "json", "-o", "-"])

    assert past.exit_code == 0 and today.exit_code == 0, past.output + today.output
    then, now = json.loads(past.stdout), json.loads(today.stdout)
    assert then["as_of"] == "2026-06-30T23:59:59.999999+00:00"
    assert {c["customer"]: c["class"] for c in then["customers"]} == {
        "acme.example": "covered", "globex.example": "single-threaded", "umbrella.example": "personal-channel-only"}
    assert {c["customer"]: c["class"] for c in now["customers"]}["acme.example"] == "unattended"
    with world.engine.connect() as db:
        days = db.execute(select(CoverageSnapshot.day).distinct()).scalars().all()
    assert days == [datetime.now(timezone.utc).date()]


@pytest.mark.parametrize("as_of", ["yesterday", "2999-01-01"])
def test_an_unusable_as_of_is_one_line_and_exit_2(world: HandBuilt, tmp_path: Path,
                                                   registry_target: tuple[str, str | None], as_of: str) -> None:
    result = CliRunner().invoke(app, ["-c", str(config_for(tmp_path, registry_target)), "report", "coverage",
                                      "--as-of", as_of])

    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "--as-of" in result.output


def test_customers_of_a_leaving_rep_are_at_risk_and_colleagues_in_touch_are_counted(world: HandBuilt) -> None:
    """Alice is leaving: she still covers until her date, and her customers are flagged. A colleague
    (an internal address that is not a declared rep) who also wrote to Globex is counted, not credited."""
    world.update_rep(ALICE, status="leaving")
    world.mail(rep("support"), "ops@globex.example", days_ago=5)

    rows = {row["customer"]: row for row in json.loads(render_json(build_report(world.engine, POLICY, NOW)))["customers"]}

    assert (rows["globex.example"]["class"], rows["globex.example"]["at_risk"]) == ("single-threaded", True)
    assert (rows["acme.example"]["class"], rows["acme.example"]["at_risk"]) == ("covered", True)
    assert rows["umbrella.example"]["at_risk"] is False
    assert (rows["globex.example"]["colleagues"], rows["acme.example"]["colleagues"]) == (1, 0)
