"""`custody depart` and `custody handover` on the demo company, the way an operator uses them."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from config.settings import load_settings
from daemon.cli.app import app
from demo.company import DemoCompany
from registry.models import Customer, HandoverItem, Interaction, Notification, Rep
from registry.store import open_registry
from tests.support.demo import copy_company

DEPARTING = "wang.lei@northwind-demo.example"


@pytest.fixture(scope="module")
def synced(demo_company_today: DemoCompany, tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoCompany, Engine]:
    company = copy_company(demo_company_today, tmp_path_factory.mktemp("demo") / "northwind")
    result = CliRunner().invoke(app, ["--config", str(company.config_path), "sync"])
    assert result.exit_code == 0, result.output
    return company, open_registry(load_settings(company.config_path).registry_url())


def custody(company: DemoCompany, *args: str) -> str:
    result = CliRunner().invoke(app, ["--config", str(company.config_path), *args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_depart_show_approve_report_cancel(synced: tuple[DemoCompany, Engine], tmp_path: Path) -> None:
    company, engine = synced
    letters = tmp_path / "letters"
    effective = (datetime.now(timezone.utc) + timedelta(days=10)).strftime("%Y-%m-%d")
    output = custody(company, "depart", DEPARTING, "--effective", effective)
    assert output.startswith("handover 1: ")
    with engine.connect() as db:
        rep_id = db.execute(select(Rep.id).where(Rep.email == DEPARTING)).scalar_one()
        touched = set(db.execute(select(Interaction.customer_id).where(Interaction.rep_id == rep_id)).scalars())
        items = db.execute(select(HandoverItem.customer_id, HandoverItem.strategy, HandoverItem.needs_human)
                           .where(HandoverItem.handover_id == 1)).all()
        rows = db.execute(select(Notification.locale, Notification.state, Notification.step)
                          .where(Notification.handover_id == 1)).all()
        unowned = db.execute(select(func.count()).select_from(Customer)
                             .where(Customer.id.in_(touched), Customer.owner_rep_id.is_(None))).scalar_one()  # type: ignore[attr-defined]
    assert {c for c, _, _ in items} >= touched and len(touched) == unowned
    assert all(strategy for _, strategy, _ in items)
    assert {locale for locale, _, _ in rows} == {"en", "zh"}
    assert {state for _, state, _ in rows} == {"held"}
    assert f"{len(items)} customers, {len(rows)} messages planned" in output
    shown = custody(company, "handover", "show", "1")
    assert f"handover 1 of {DEPARTING}: planned" in shown and f"messages: {len(rows)} (held {len(rows)})" in shown
    humans = sum(1 for _, _, human in items if human)
    assert humans and f"{humans} customers have no company-channel contact to mail" in shown
    assert f"wrote {len(rows)} letters to" in custody(company, "handover", "show", "1", "--letters", str(letters))
    assert {p.suffix for p in letters.rglob("*") if p.is_file()} == {".eml"}
    assert len(list(letters.rglob("*.eml"))) == len(rows)
    assert "already has open handover 1" in custody(company, "depart", DEPARTING)
    assert f"{len(rows)} messages released" in custody(company, "handover", "approve", "1")
    report = json.loads(custody(company, "handover", "report", "1", "--json"))
    assert (report["status"], report["planned"], report["by_state"]) == ("notifying", len(rows), {"pending": len(rows)})
    assert f"{len(rows)} unsent messages held" in custody(company, "handover", "cancel", "1", "--reason", "test over")
    assert "held: farewell to" in custody(company, "handover", "report", "1")
    cancelled = json.loads(custody(company, "handover", "show", "1", "--json"))
    assert cancelled["status"] == "cancelled" and len(cancelled["customers"]) == len(items)
    assert {x["state"] for c in cancelled["customers"] for x in c["letters"]} == {"held"}
    assert custody(company, "report", "handover", "1") == custody(company, "handover", "report", "1")
    listed = custody(company, "handover", "list")
    assert DEPARTING in listed and "cancelled" in listed


def test_errors_are_one_line_and_exit_1(synced: tuple[DemoCompany, Engine]) -> None:
    company, _ = synced
    for args, message in ((["depart", "ghost@northwind-demo.example"], "no rep is known by the address"),
                          (["handover", "approve", "999"], "handover 999 does not exist")):
        result = CliRunner().invoke(app, ["--config", str(company.config_path), *args])
        assert result.exit_code == 1 and message in result.output


def test_hr_folder_import(synced: tuple[DemoCompany, Engine], tmp_path: Path) -> None:
    company, _ = synced
    (tmp_path / "hr.csv").write_text("email,action\nsophie.martin@northwind-demo.example,leaver\n", encoding="utf-8")
    output = custody(company, "handover", "import-hr", str(tmp_path))
    assert "handover" in output and "planned" in output
    assert (tmp_path / "processed" / "hr.csv").exists()


def test_a_configured_rep_can_depart_before_any_sync_and_policy_gaps_are_config_errors(tmp_path: Path) -> None:
    config = tmp_path / "custody.toml"
    config.write_text('data_dir = "data"\n[[reps]]\nemail = "alice@corp.example"\nname = "Alice"\n', encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(config), "depart", "alice@corp.example"])
    assert result.exit_code == 2
    assert "policy.notifications.shared_mailbox: required by steps with sender 'shared'" in result.output
    (tmp_path / "policy.yaml").write_text("notifications: {shared_mailbox: customers@corp.example}\n", encoding="utf-8")
    config.write_text('policy_file = "policy.yaml"\n' + config.read_text(encoding="utf-8"), encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(config), "depart", "alice@corp.example"])
    assert result.exit_code == 0 and "handover 1: 0 customers, 0 messages planned" in result.output
