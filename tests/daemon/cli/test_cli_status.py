"""`custody sync` and `custody status` on a mailbox of damaged mail, as a new user would run them."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from daemon.cli.app import app
from registry.models import Interaction, Message, Source
from registry.store import open_registry
from tests.support.damaged_mail import build_damaged_maildir


def config_for(tmp_path: Path, mail: Path) -> Path:
    (tmp_path / "policy.yaml").write_text("company_domains: [acme.test]\n", encoding="utf-8")
    config = tmp_path / "custody.toml"
    config.write_text(f'data_dir = "data"\npolicy_file = "policy.yaml"\n[[reps]]\nemail = "bob@acme.test"\n'
                      f'[[sources]]\nname = "bob"\nkind = "maildir"\npath = "{mail}"\nowner = "bob@acme.test"\n'
                      f'[[sources]]\nname = "gone"\nkind = "maildir"\npath = "{tmp_path / "nowhere"}"\n',
                      encoding="utf-8")
    return config


def custody(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--config", str(config), *args], env={"COLUMNS": "400"})
    return result.exit_code, result.output


def test_damaged_mail_syncs_and_every_skipped_item_is_listed_with_its_reason(tmp_path: Path) -> None:
    expected = build_damaged_maildir(tmp_path / "mail")
    config = config_for(tmp_path, tmp_path / "mail")

    code, output = custody(config, "sync", "--source", "bob")
    assert code == 0, output
    said = re.search(rf"bob: {len(expected.records)} messages \((\d+) new\), 0 address-book entries, "
                     rf"{len(expected.skipped)} skipped", output)
    assert said, output
    code, listed = custody(config, "status", "--skipped", "bob")

    assert code == 0
    for ref, reason in expected.skipped.items():
        assert any(ref in line and reason in line for line in listed.splitlines()), (ref, reason)
    assert f"{len(expected.skipped)} skipped items" in listed
    engine = open_registry(f"sqlite:///{tmp_path / 'data' / 'custody.db'}")
    with engine.connect() as db:
        messages = db.execute(select(func.count()).select_from(Message)).scalar_one()
        linked = db.execute(select(func.count(func.distinct(Interaction.message_id)))).scalar_one()
    assert 0 < linked < messages <= len(expected.records)
    assert int(said.group(1)) == messages


def test_a_failing_source_shows_its_last_error_on_one_line(tmp_path: Path) -> None:
    build_damaged_maildir(tmp_path / "mail")
    config = config_for(tmp_path, tmp_path / "mail")

    code, _ = custody(config, "sync")
    _, status = custody(config, "status")

    assert code == 1
    failing = [line for line in status.splitlines() if line.startswith("│ gone")]
    assert len(failing) == 1 and "does not exist" in failing[0]
    engine = open_registry(f"sqlite:///{tmp_path / 'data' / 'custody.db'}")
    with engine.connect() as db:
        assert db.execute(select(Source.status).where(Source.name == "bob")).scalar_one() == "ok"
