"""`custody outbox run` and `custody outbox status` as an operator uses them."""

from __future__ import annotations

import json
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select, update
from typer.testing import CliRunner

from daemon.cli.app import app
from daemon.runtime import Runtime
from daemon.service.scheduler import Service
from registry.models import AuditEvent, Notification
from registry.store import open_registry
from tests.servers.smtp import SmtpServer
from tests.support.outbox import plan_notifications

POLICY = "dispatch: {per_mailbox_per_hour: 0, per_domain_per_hour: 0, quiet_hours: null}\n"


def configure(folder: Path, smtp: SmtpServer | None) -> Path:
    (folder / "policy.yaml").write_text(POLICY)
    smtp_section = f'\n[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "plain"\n' if smtp else ""
    config = folder / "custody.toml"
    config.write_text(f'data_dir = "data"\npolicy_file = "policy.yaml"\n{smtp_section}')
    return config


def custody(config: Path, *args: str) -> tuple[int, str]:
    """Exit code and standard output; errors and logs go to standard error."""
    result = CliRunner().invoke(app, ["--config", str(config), *args])
    return result.exit_code, result.stdout if result.exit_code == 0 else result.stderr


def test_dry_run_writes_eml_files_and_leaves_the_outbox_pending(tmp_path: Path) -> None:
    config = configure(tmp_path, smtp=None)
    planned = plan_notifications(open_registry(f"sqlite:///{tmp_path / 'data' / 'custody.db'}"), 3)

    code, output = custody(config, "outbox", "run", "--dry-run", str(tmp_path / "review"))
    status_code, status = custody(config, "outbox", "status", "--json")

    assert code == 0 and json.loads(output)["written"] == 3
    written = "".join(path.read_text() for path in (tmp_path / "review").glob("*.eml"))
    assert all(f"Message-ID: {p.message_id}" in written for p in planned)
    assert status_code == 0 and json.loads(status)["states"] == {"pending": 3}


def test_sending_needs_an_smtp_section(tmp_path: Path) -> None:
    config = configure(tmp_path, smtp=None)

    code, output = custody(config, "outbox", "run")

    assert code == 2 and "smtp: no [smtp] section" in output


def test_run_with_a_cap_then_status_lists_counts_per_state(tmp_path: Path, smtp_server: SmtpServer) -> None:
    config = configure(tmp_path, smtp_server)
    plan_notifications(open_registry(f"sqlite:///{tmp_path / 'data' / 'custody.db'}"), 3)

    code, output = custody(config, "outbox", "run", "--max", "2")
    _, status = custody(config, "outbox", "status")

    assert code == 0 and json.loads(output)["sent"] == 2 and json.loads(output)["capped"] is True
    assert len(smtp_server.received) == 2
    assert "pending 1, sent 2" in status


def test_a_held_message_is_released_by_a_human_decision(tmp_path: Path, smtp_server: SmtpServer) -> None:
    config = configure(tmp_path, smtp_server)
    engine = open_registry(f"sqlite:///{tmp_path / 'data' / 'custody.db'}")
    resend, went_out = plan_notifications(engine, 2)
    with engine.begin() as db:
        db.execute(update(Notification).where(Notification.id.in_([resend.id, went_out.id]))  # type: ignore[attr-defined]
                   .values(state="held", held_reason="interrupted while being sent"))

    undecided, _ = custody(config, "outbox", "release", str(resend.id))
    assert custody(config, "outbox", "release", str(resend.id), "--resend")[0] == 0
    assert custody(config, "outbox", "release", str(went_out.id), "--went-out")[0] == 0
    again, message = custody(config, "outbox", "release", str(went_out.id), "--resend")
    code, output = custody(config, "outbox", "run")

    assert undecided == 2 and again == 1 and "is not held" in message
    assert code == 0 and json.loads(output)["sent"] == 1
    assert smtp_server.message_ids() == [resend.message_id]
    with engine.connect() as db:
        decided = db.execute(select(AuditEvent.action, AuditEvent.actor).where(AuditEvent.entity_id == str(went_out.id))).one()
    assert decided.action == "notification.sent" and decided.actor.startswith("cli:")


def scheduled(rt: Runtime) -> BackgroundScheduler:
    service = Service(rt)
    service.schedule()
    return service.scheduler


def test_the_service_schedules_an_outbox_round_when_smtp_is_configured(tmp_path: Path, smtp_server: SmtpServer) -> None:
    with_smtp = Runtime(configure(tmp_path, smtp_server))
    planned = plan_notifications(with_smtp.engine, 2)
    (tmp_path / "no-smtp").mkdir()
    without_smtp = Runtime(configure(tmp_path / "no-smtp", None))

    outbox_job = scheduled(with_smtp).get_job("outbox")
    outbox_job.func(*outbox_job.args)

    assert scheduled(without_smtp).get_job("outbox") is None
    assert sorted(smtp_server.message_ids()) == sorted(p.message_id for p in planned)
