"""The coverage exports: one documented row per customer, most at risk first, written row by row
through the CLI, always audited."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from daemon.cli.app import app
from policies.identity import KnownRep
from registry.models import AuditEvent, CoverageSnapshot, Customer
from reports.coverage import (
    CSV_FIELDS,
    SEVERITY,
    WRITERS,
    CoverageReport,
    export_report,
    stream_report,
    write_csv,
    write_html,
    write_json,
)
from tests.support.handbuilt import NOW, POLICY, HandBuilt, entry, rep

ALICE, BOB = rep("alice"), rep("bob")


@pytest.fixture
def world(engine: Engine) -> HandBuilt:
    world = HandBuilt(engine)
    world.declare(KnownRep(ALICE, "Alice Smith"), KnownRep(BOB, "Bob Jones"))
    world.conversation(ALICE, "buyer@acme.example", 3, days_ago=10)
    world.mail(BOB, "cfo@acme.example", days_ago=12)
    world.mail(ALICE, "ops@globex.example", days_ago=30, cc="alice.smith@gmail.com")
    world.address_book(BOB, "personal", entry("9", "Dana Lee", ("dana@umbrella.example",)))
    return world


def render(writer: Callable[[CoverageReport, TextIO], None], report: CoverageReport) -> str:
    out = io.StringIO()
    writer(report, out)
    return out.getvalue()


def held(report: CoverageReport) -> CoverageReport:
    """A streamed report read through once and kept, for a test that reads its customers twice; its
    few customers are one chunk, so it holds the messages of every one."""
    report.customers = list(report.customers)
    return report


def audit_events(engine: Engine) -> list[tuple[str, str, dict]]:
    with engine.connect() as db:
        return [tuple(r) for r in db.execute(select(AuditEvent.action, AuditEvent.entity_id, AuditEvent.detail))]


def test_json_export_has_one_row_per_customer_with_its_evidence_and_is_audited(world: HandBuilt, tmp_path: Path) -> None:
    report = stream_report(world.engine, POLICY, NOW)

    export_report(world.engine, report, "json", tmp_path / "c.json", "cli:auditor")

    data = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
    rows = {row["customer"]: row for row in data["customers"]}
    assert data["summary"]["covered"] == 1 and data["lookback_days"] == POLICY.lookback_days
    assert rows["acme.example"] == {
        "customer_id": rows["acme.example"]["customer_id"], "customer": "acme.example", "name": "acme.example",
        "kind": "organisation", "class": "covered", "owner": None, "pool": False, "reps": [ALICE, BOB],
        "interactions": 4, "last_company_contact": "2026-06-20T14:00:00+00:00", "personal_sightings": [],
        "personal_relays": 0, "personal_messages": 0, "personal_requests": 0, "at_risk": False, "colleagues": 0,
        "rep_activity": [
            {"rep": ALICE, "name": "Alice Smith", "team": "", "interactions": 3, "last_at": "2026-06-20T14:00:00+00:00"},
            {"rep": BOB, "name": "Bob Jones", "team": "", "interactions": 1, "last_at": "2026-06-18T12:00:00+00:00"}],
        "contested_by": [],
        "messages": [
            {"at": "2026-06-20T14:00:00+00:00", "direction": "outbound", "channel": "company", "rep": ALICE, "subject": "Order"},
            {"at": "2026-06-20T13:00:00+00:00", "direction": "inbound", "channel": "company", "rep": ALICE, "subject": "Order"},
            {"at": "2026-06-20T12:00:00+00:00", "direction": "outbound", "channel": "company", "rep": ALICE, "subject": "Order"},
            {"at": "2026-06-18T12:00:00+00:00", "direction": "outbound", "channel": "company", "rep": BOB, "subject": "Order"}],
    }
    assert rows["globex.example"]["personal_relays"] == 1
    assert rows["umbrella.example"]["class"] == "personal-channel-only"
    assert rows["umbrella.example"]["personal_sightings"] == [
        {"rep": BOB, "source": f"{BOB}-personal-vcard", "name": "Dana Lee", "entry": "phone#9"}]
    assert [r["rep"] for r in data["reps"] if r["flagged"]] == [ALICE]
    assert audit_events(world.engine) == [("report.exported", "coverage", {
        "format": "json", "rows": 3, "path": str(tmp_path / "c.json"), "as_of": NOW.isoformat()})]


def test_csv_export_uses_the_documented_columns(world: HandBuilt) -> None:
    rows = list(csv.DictReader(io.StringIO(render(write_csv, stream_report(world.engine, POLICY, NOW)))))

    assert tuple(rows[0]) == CSV_FIELDS
    by_customer = {r["customer"]: r for r in rows}
    assert by_customer["acme.example"]["reps"] == f"{ALICE}; {BOB}"
    assert by_customer["acme.example"]["rep_activity"] == (
        f"Alice Smith <{ALICE}>: 3 (2026-06-20); Bob Jones <{BOB}>: 1 (2026-06-18)")
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

    result = CliRunner().invoke(app, ["-c", str(config), "report", "coverage", "-f", "csv", "-o", "-", "--no-bom"])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == ",".join(CSV_FIELDS)
    assert len(result.stdout.splitlines()) == 1 + 3


def test_csv_starts_with_a_byte_order_mark_so_excel_reads_utf8_unless_told_not_to(
        world: HandBuilt, tmp_path: Path, registry_target: tuple[str, str | None]) -> None:
    world.address_book(BOB, "personal", entry("10", "Jürgen Müller", ("jm@zürich-bank.example",)))
    config = config_for(tmp_path, registry_target)
    command = ["-c", str(config), "report", "coverage", "-f", "csv", "-o"]

    default = CliRunner().invoke(app, [*command, str(tmp_path / "excel.csv")])
    plain = CliRunner().invoke(app, [*command, str(tmp_path / "plain.csv"), "--no-bom"])
    piped = CliRunner().invoke(app, [*command, "-"])

    assert default.exit_code == plain.exit_code == piped.exit_code == 0, default.output + plain.output
    excel = (tmp_path / "excel.csv").read_bytes()
    assert excel.startswith(b"\xef\xbb\xbf" + b"customer_id,")
    assert "Jürgen Müller" in excel.decode("utf-8-sig")
    assert (tmp_path / "plain.csv").read_bytes() == excel[3:]
    assert piped.stdout_bytes == excel


@pytest.mark.parametrize("fmt", ["csv", "json", "html"])
def test_each_format_is_written_one_customer_at_a_time(world: HandBuilt, fmt: str) -> None:
    """Constant memory per row: no single write to the file holds two customers."""
    report = held(stream_report(world.engine, POLICY, NOW))
    writes: list[str] = []

    class Recorded(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return super().write(text)

    WRITERS[fmt](report, Recorded())

    keys = [c.key for c in report.customers]
    assert all(sum(key in text for key in keys) <= 1 for text in writes)
    assert all(any(key in text for text in writes) for key in keys)


@pytest.mark.parametrize("writer", [write_csv, write_json])
def test_csv_and_json_stream_two_customers_at_a_time_and_say_what_the_whole_report_says(
        world: HandBuilt, writer: Callable[[CoverageReport, TextIO], None]) -> None:
    """Memory holds one chunk of customers with their messages, however many customers there are."""
    for n in range(4):
        world.conversation(BOB, f"x@solo{n}.example", n + 1, days_ago=10 + n)
    world.update_rep(BOB, status="leaving")
    streamed = stream_report(world.engine, POLICY, NOW, chunk=2)
    held_at_first_row: list[tuple[int, int]] = []

    class Watching(io.StringIO):
        def write(self, text: str) -> int:
            if "example" in text and not held_at_first_row:
                held_at_first_row.append((len(streamed.messages), len(streamed.reps)))
            return super().write(text)

    out = Watching()
    writer(streamed, out)

    whole = held(stream_report(world.engine, POLICY, NOW))
    assert out.getvalue() == render(writer, whole)
    assert sum(whole.summary.values()) > 4 and len(whole.messages) > 2
    assert held_at_first_row[0][0] <= 2 and held_at_first_row[0][1] == 0
    assert len(streamed.messages) <= 2 and streamed.reps == whole.reps


def test_the_html_page_reads_two_customers_at_a_time_and_shows_what_the_whole_report_shows(world: HandBuilt) -> None:
    """Its summary and reps come before its customers, so their rows wait in a temporary file, not in memory."""
    for n in range(4):
        world.conversation(BOB, f"x@solo{n}.example", n + 1, days_ago=10 + n)
    streamed = stream_report(world.engine, POLICY, NOW, chunk=2)

    page = render(write_html, streamed)

    whole = held(stream_report(world.engine, POLICY, NOW))
    assert page == render(write_html, whole)
    assert all(f'"key":"solo{n}.example"' in page for n in range(4))
    assert len(streamed.messages) <= 2 < len(whole.messages)


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

    rows = {row["customer"]: row for row in json.loads(render(write_json, stream_report(world.engine, POLICY, NOW)))["customers"]}

    assert (rows["globex.example"]["class"], rows["globex.example"]["at_risk"]) == ("single-threaded", True)
    assert (rows["acme.example"]["class"], rows["acme.example"]["at_risk"]) == ("covered", True)
    assert rows["umbrella.example"]["at_risk"] is False
    assert (rows["globex.example"]["colleagues"], rows["acme.example"]["colleagues"]) == (1, 0)


def test_customers_come_most_at_risk_first_with_the_teams_that_contest_them(world: HandBuilt) -> None:
    """Personal-only before single-threaded before contested before covered; within a class the
    customer of a leaving rep first, then the one whose mail rests most on one rep."""
    carol, dave = rep("carol"), rep("dave")
    world.declare(*world.reps, KnownRep(carol, "Carol White"), KnownRep(dave, "Dave Brown"))
    world.update_rep(carol, team="APAC")
    world.update_rep(dave, team="EMEA")
    world.conversation(carol, "a@initech.example", 2, days_ago=30)
    world.conversation(dave, "b@initech.example", 2, days_ago=20)
    for n, count in enumerate((1, 4)):
        world.conversation(BOB, f"x@solo{n}.example", count, days_ago=40 + n)
    world.update_rep(BOB, status="leaving")

    data = json.loads(render(write_json, stream_report(world.engine, POLICY, NOW)))

    order = [(c["customer"], c["class"]) for c in data["customers"]]
    assert order == [
        ("umbrella.example", "personal-channel-only"),
        ("solo1.example", "single-threaded"), ("solo0.example", "single-threaded"),
        ("globex.example", "single-threaded"),
        ("initech.example", "contested"),
        ("acme.example", "covered"),
    ]
    assert SEVERITY.index("personal-channel-only") < SEVERITY.index("single-threaded") < SEVERITY.index("covered")
    initech = data["customers"][4]
    assert initech["contested_by"] == ["APAC", "EMEA"]
    assert [(r["name"], r["team"]) for r in initech["rep_activity"]] == [("Carol White", "APAC"), ("Dave Brown", "EMEA")]


def test_evidence_names_the_latest_messages_of_each_customer_headers_only(world: HandBuilt) -> None:
    """One query for every customer, newest first, at most N each, a message to two of its contacts
    once; mail outside the window is not evidence."""
    for n in range(4):
        world.mail(BOB, "cfo@acme.example", days_ago=5 - n / 24, subject=f"Quote {n}",
                   cc="buyer@acme.example" if n == 3 else "")
    world.mail(BOB, "cfo@acme.example", days_ago=POLICY.lookback_days + 1, subject="Too old")

    report = stream_report(world.engine, POLICY, NOW, messages_per_customer=3)
    data = json.loads(render(write_json, report))

    acme = next(c for c in data["customers"] if c["customer"] == "acme.example")
    assert [(m["subject"], m["rep"], m["direction"]) for m in acme["messages"]] == [
        ("Quote 3", BOB, "outbound"), ("Quote 2", BOB, "outbound"), ("Quote 1", BOB, "outbound")]
    assert all(len(c["messages"]) <= 3 for c in data["customers"])
    assert "Too old" not in json.dumps(data)
    assert next(c for c in data["customers"] if c["customer"] == "umbrella.example")["messages"] == []
