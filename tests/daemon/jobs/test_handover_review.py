"""Reviewing a plan before approval, through the CLI on a hand-built company in the registry on SQLite
and PostgreSQL: `handover show` (table, --json, --letters), `handover reassign`, and the successor cap."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, select
from typer.testing import CliRunner, Result

from config.policy import Policy
from config.settings import load_settings
from daemon.cli.app import app
from daemon.cli.handover import letter_path
from daemon.sync.engine import register_reps
from daemon.sync.readers import identity_for
from policies.identity import KnownRep
from registry.models import AuditEvent, Customer, HandoverItem, Notification, Rep
from registry.store import open_registry
from tests.support.handbuilt import HandBuilt, entry, rep

POLICY = {
    "company_domains": ["corp.example"], "lookback_days": 3650,
    "ownership": {"strategies": ["explicit", "co_covering", "manager", "team_least_loaded", "pool"]},
    "notifications": {"company_name": "Corp", "shared_mailbox": "customers@corp.example"},
}
REPS = [
    {"email": rep("alice"), "name": "Alice Archer", "team": "east", "manager": rep("mary")},
    {"email": rep("bob"), "name": "Bob Baker", "team": "east"},
    {"email": rep("carol"), "name": "Carol Clark", "team": "east"},
    {"email": rep("mary"), "name": "Mary Major"},
]
EFFECTIVE = (datetime.now(timezone.utc) + timedelta(days=10)).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class Workspace:
    config: Path
    engine: Engine
    built: HandBuilt

    def custody(self, *args: str, exit_code: int = 0) -> Result:
        result = CliRunner().invoke(app, ["--config", str(self.config), *args], env={"COLUMNS": "250"})
        assert result.exit_code == exit_code, result.output
        return result

    def depart(self) -> None:
        self.custody("depart", rep("alice"), "--effective", f"{EFFECTIVE:%Y-%m-%d}")

    def review(self) -> dict[str, Any]:
        shown = json.loads(self.custody("handover", "show", "1", "--json").stdout)
        return shown | {"customers": {c["key"]: c for c in shown["customers"]}}

    def letters(self) -> list[Any]:
        with self.engine.connect() as db:
            return list(db.execute(select(Notification.__table__).order_by(Notification.id)))


def workspace(tmp_path: Path, registry_target: tuple[str, str | None], **ownership: object) -> Workspace:
    """A config and policy file for a registry on the target backend, with the four reps declared."""
    policy = POLICY | {"ownership": POLICY["ownership"] | ownership}  # type: ignore[operator]
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    url, schema = registry_target
    config = tmp_path / "custody.toml"
    lines = ['data_dir = "data"', 'policy_file = "policy.yaml"', f"database_url = {json.dumps(url)}",
             f"database_schema = {json.dumps(schema or '')}"]
    for declared in REPS:
        lines += ["[[reps]]", *(f"{key} = {json.dumps(value)}" for key, value in declared.items())]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = load_settings(config)
    engine = open_registry(settings.registry_url(), settings.database_schema or None)
    register_reps(engine, settings, identity_for(settings, Policy(**policy)))
    return Workspace(config, engine, HandBuilt(engine, Policy(**policy), tuple(KnownRep(r["email"]) for r in REPS)))


@pytest.fixture
def company(tmp_path: Path, registry_target: tuple[str, str | None]) -> Iterator[Workspace]:
    """Alice leaves. Acme is co-covered by Bob; Globex (China) only by Alice; Initech only in her phone;
    Pat, a colleague, mailed Acme once."""
    space = workspace(tmp_path, registry_target)
    space.built.conversation(rep("alice"), "john@acme.example", 4, days_ago=20)
    space.built.conversation(rep("alice"), "jane@acme.example", 2, days_ago=40)
    space.built.conversation(rep("bob"), "john@acme.example", 2, days_ago=3)
    space.built.conversation(rep("alice"), "li@globex.com.cn", 3, days_ago=10)
    space.built.address_book(rep("alice"), "personal", entry("1", "Peter Gibbons", emails=("peter@initech.example",),
                                                             phones=("+44 20 7946 0018",)))
    space.built.mail("pat@corp.example", "john@acme.example", 5)
    yield space
    space.engine.dispose()


def test_show_lists_successors_contacts_and_every_letter_with_its_due_time(company: Workspace) -> None:
    company.depart()
    shown = company.custody("handover", "show", "1").stdout
    farewell, introduction = EFFECTIVE - timedelta(days=2), EFFECTIVE + timedelta(days=2)
    assert f"handover 1 of {rep('alice')}: planned, effective {EFFECTIVE:%Y-%m-%dT%H:%M:%SZ}" in shown
    for expected in ("Bob Baker <bob@corp.example>", "co_covering: Bob Baker <bob@corp.example> also covers",
                     "Mary Major <mary@corp.example>", "manager: Mary Major <mary@corp.example> is the manager",
                     "Peter Gibbons: peter@initech.example, +442079460018", "cc bob@corp.example",
                     "Corp <customers@corp.example>", "held: awaiting approval",
                     f"{farewell:%Y-%m-%dT%H:%M:%SZ}", f"{introduction:%Y-%m-%dT%H:%M:%SZ}",
                     "messages: 6 (held 6)", "1 customers have no company-channel contact to mail"):
        assert expected in shown, expected


def test_show_json_gives_the_same_plan_to_machines_in_any_status(company: Workspace) -> None:
    company.depart()
    review = company.review()
    acme, globex, initech = (review["customers"][k] for k in ("acme.example", "globex.com.cn", "initech.example"))
    assert (review["status"], review["effective_at"]) == ("planned", f"{EFFECTIVE:%Y-%m-%dT%H:%M:%SZ}")
    assert (acme["successor_email"], acme["strategy"], acme["needs_human"]) == (rep("bob"), "co_covering", False)
    assert [(x["to_email"], x["step"], x["locale"], x["sender_email"], x["cc_emails"], x["state"], x["send_after"])
            for x in acme["letters"]] == [
        ("jane@acme.example", "farewell", "en", "customers@corp.example", [rep("bob")], "held",
         f"{EFFECTIVE - timedelta(days=2):%Y-%m-%dT%H:%M:%SZ}"),
        ("jane@acme.example", "introduction", "en", rep("bob"), [], "held",
         f"{EFFECTIVE + timedelta(days=2):%Y-%m-%dT%H:%M:%SZ}"),
        ("john@acme.example", "farewell", "en", "customers@corp.example", [rep("bob")], "held",
         f"{EFFECTIVE - timedelta(days=2):%Y-%m-%dT%H:%M:%SZ}"),
        ("john@acme.example", "introduction", "en", rep("bob"), [], "held",
         f"{EFFECTIVE + timedelta(days=2):%Y-%m-%dT%H:%M:%SZ}"),
    ]
    assert {x["locale"] for x in globex["letters"]} == {"zh"} and globex["successor_email"] == rep("mary")
    assert (initech["needs_human"], initech["letters"]) == (True, [])
    assert initech["contacts"] == [{"name": "Peter Gibbons", "points": ["peter@initech.example", "+442079460018"]}]
    assert initech["evidence"] and "personal address book" in initech["evidence"][0]
    assert {c["name"] or c["points"][0] for c in acme["contacts"]} >= {"john@acme.example", "jane@acme.example"}
    company.custody("handover", "cancel", "1", "--reason", "wrong rep")
    cancelled = company.review()
    assert (cancelled["status"], cancelled["cancelled_reason"]) == ("cancelled", "wrong rep")
    assert {x["held_reason"] for x in cancelled["customers"]["acme.example"]["letters"]} == {"cancelled: wrong rep"}


def test_show_letters_writes_every_unapproved_letter_as_an_eml_named_by_customer_and_step(
        company: Workspace, tmp_path: Path) -> None:
    company.depart()
    folder = tmp_path / "review"
    result = company.custody("handover", "show", "1", "--json", "--letters", str(folder))
    assert json.loads(result.stdout)["status"] == "planned" and "wrote 6 letters to" in result.stderr
    rows = company.letters()
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.eml"))
    assert files == sorted(f"{row.to_email.split('@')[1]}/{row.step}-{row.to_email}.eml" for row in rows)
    for row in rows:
        path = folder / row.to_email.split("@")[1] / f"{row.step}-{row.to_email}.eml"
        letter = message_from_bytes(path.read_bytes(), policy=email_policy.default)
        assert (letter["Message-ID"], letter["Subject"], letter["To"]) == (row.message_id_header, row.subject,
                                                                          row.to_email)
        assert row.sender_email in letter["From"]
    assert {row.state for row in company.letters()} == {"held"}
    with company.engine.connect() as db:
        exported = db.execute(select(AuditEvent.detail).where(AuditEvent.action == "handover_letters_exported")).one()
    assert exported.detail["written"] == 6


def test_letter_file_names_cannot_leave_the_folder(tmp_path: Path) -> None:
    path = letter_path(tmp_path, "../../etc", "farewell", "evil/../x@y.example\n")
    assert path.parent.parent == tmp_path and path.parent.name == "_.._etc"
    assert path.name == "farewell-evil_.._x@y.example_.eml"
    assert letter_path(tmp_path, "..", "introduction", "-rf").relative_to(tmp_path) == Path("_/introduction-rf.eml")
    assert letter_path(tmp_path, "org:王磊 GmbH", "farewell", "li@globex.com.cn").parent.name == "org_GmbH"


@pytest.mark.parametrize(("customer", "successor", "message"), [
    ("acme.example", "ghost@corp.example", "no rep is known by the address ghost@corp.example"),
    ("acme.example", rep("alice"), "alice@corp.example is the departing rep of handover 1"),
    ("acme.example", "pat@corp.example", "pat@corp.example is a colleague seen in mail, not a declared rep"),
    ("acme.example", rep("carol"), "carol@corp.example is leaving, not an active rep"),
    ("nowhere.example", rep("bob"), "customer nowhere.example is not in handover 1"),
])
def test_reassign_refuses_with_one_line_and_exit_2(company: Workspace, customer: str, successor: str,
                                                   message: str) -> None:
    company.depart()
    company.built.update_rep(rep("carol"), status="leaving")
    result = company.custody("handover", "reassign", "1", customer, successor, exit_code=2)
    assert result.output == f"custody: {message}\n"


def test_reassign_gives_one_customer_to_another_rep(company: Workspace) -> None:
    company.depart()
    with company.engine.connect() as db:
        globex = db.execute(select(Customer.id).where(Customer.key == "globex.com.cn")).scalar_one()
    company.custody("handover", "reassign", "1", "globex.com.cn", rep("bob"), "--reason", "speaks Mandarin")
    company.custody("handover", "reassign", "1", str(globex), rep("carol"))
    review = company.review()["customers"]
    assert (review["globex.com.cn"]["successor_email"], review["globex.com.cn"]["strategy"]) == (rep("carol"), "manual")
    assert review["acme.example"]["successor_email"] == rep("bob")
    with company.engine.connect() as db:
        item = db.execute(select(HandoverItem.successor_rep_id).where(HandoverItem.customer_id == globex)).scalar_one()
        carol = db.execute(select(Rep.id).where(Rep.email == rep("carol"))).scalar_one()
    assert item == carol


def test_a_capped_manager_spills_customers_over_to_the_team(tmp_path: Path,
                                                            registry_target: tuple[str, str | None]) -> None:
    """Mary already owns one customer; with a cap of 3 she takes 2 of Alice's 5, the team the rest."""
    space = workspace(tmp_path, registry_target, max_customers_per_successor=3)
    space.built.conversation(rep("mary"), "boss@mary-own.example", 2, days_ago=5)
    space.built.set_owner("mary-own.example", rep("mary"))
    for n in range(1, 6):
        space.built.conversation(rep("alice"), f"buyer@c{n}.example", 2, days_ago=n)
    space.depart()
    customers = space.review()["customers"]
    space.engine.dispose()
    given = [(c["successor_email"], c["strategy"]) for c in customers.values()]
    assert given.count((rep("mary"), "manager")) == 2
    assert sorted(e for e, s in given if s == "team_least_loaded") == [rep("bob"), rep("bob"), rep("carol")]
    spilled = [c["reason"] for c in customers.values() if c["strategy"] == "team_least_loaded"]
    assert all(r.startswith("manager: Mary Major <mary@corp.example> is at the cap of 3 customers; ") for r in spilled)
