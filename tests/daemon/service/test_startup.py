"""Start-up refuses what cannot work: `custody check`, a port in use, a registry newer than the code,
and the deployment files IT installs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from registry.store import MIGRATIONS, open_registry
from tests.conftest import POSTGRES_URL
from tests.support.mail import conversation, write_maildir
from tests.support.service import Service, free_port

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"


def custody(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli.app", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


def write_config(folder: Path, extra: str = "", policy: str = "company_domains: [acme.test]\n") -> Path:
    archive = write_maildir(folder / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 4)})
    (folder / "policy.yaml").write_text(policy)
    config = folder / "custody.toml"
    config.write_text(f'data_dir = "data"\npolicy_file = "policy.yaml"\n{extra}'
                      f'[[sources]]\nname = "ann"\nkind = "maildir"\npath = "{archive}"\nowner = "ann@acme.test"\n')
    return config


def test_check_says_ok_for_each_item_of_a_working_config_and_creates_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = custody(config, "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "ok    config: 0 reps, 1 sources",
        f"ok    policy: {tmp_path / 'policy.yaml'}",
        f"ok    data_dir: {tmp_path / 'data'} (created on first start)",
        f"ok    database: SQLite {tmp_path / 'data' / 'custody.db'} (created on first start)",
        "ok    migrations: every migration is applied on first start",
        f"ok    source ann: maildir {tmp_path / 'ann'}",
    ]
    assert not (tmp_path / "data").exists()
    assert custody(config, "status").returncode == 0
    again = custody(config, "check")
    assert again.returncode == 0
    assert re.search(r"^ok    migrations: current \(revision \w+\)$", again.stdout, re.MULTILINE)


def test_check_fails_a_missing_source_path_with_exit_1_and_a_bad_policy_with_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    shutil.rmtree(tmp_path / "ann")
    missing = custody(config, "check")
    assert missing.returncode == 1
    assert f"FAIL  source ann: mail folder path {tmp_path / 'ann'} does not exist" in missing.stdout.splitlines()
    (tmp_path / "policy.yaml").write_text("lookback_days: -3\n")
    bad = custody(config, "check")
    assert bad.returncode == 2
    assert "FAIL  policy: policy.lookback_days: Input should be greater than or equal to 1" in bad.stdout


def test_check_names_a_missing_secret_as_a_config_error_and_an_unreachable_server(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: connections are refused at once
    config = tmp_path / "custody.toml"
    source = f'[[sources]]\nname = "mail"\nkind = "imap"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "plain"\n'
    config.write_text(f'data_dir = "data"\n{source}password_env = "CUSTODY_TEST_UNSET_PASSWORD"\n')
    unset = custody(config, "check")
    assert unset.returncode == 2
    assert ("FAIL  source mail: password_env: environment variable CUSTODY_TEST_UNSET_PASSWORD is not set"
            in unset.stdout.splitlines())
    config.write_text(f'data_dir = "data"\n{source}password = "hunter2"\n')
    refused = custody(config, "check")
    assert refused.returncode == 1
    assert (f"FAIL  source mail: 127.0.0.1:{port}: connection failed after 1 attempts (ConnectionRefusedError: "
            "[Errno 111] Connection refused)") in refused.stdout.splitlines()
    assert "hunter2" not in refused.stdout + refused.stderr


@pytest.mark.postgres
def test_check_reports_an_unreachable_database_in_one_line_with_exit_1(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: connections are refused at once
    config = write_config(tmp_path, f'database_url = "postgresql://custody:hunter2@127.0.0.1:{port}/custody"\n')
    result = custody(config, "check")
    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if "database" in line]
    assert line.startswith("FAIL  database: postgresql unreachable: connection failed")
    assert "migrations" not in result.stdout
    assert "hunter2" not in result.stdout + result.stderr


@pytest.mark.postgres
def test_a_registry_upgraded_by_a_newer_version_is_refused_in_one_line(tmp_path: Path, postgres_schema_factory) -> None:  # type: ignore[no-untyped-def]
    schema = postgres_schema_factory()
    engine = open_registry(POSTGRES_URL, schema)
    with engine.begin() as db:
        db.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    engine.dispose()
    config = write_config(tmp_path, f'database_url = "{POSTGRES_URL}"\ndatabase_schema = "{schema}"\n')
    check = custody(config, "check")
    assert check.returncode == 1
    assert ("FAIL  migrations: the registry is at revision 0099_from_the_future, which this version of custody does "
            "not know: it was upgraded by a newer version") in check.stdout.splitlines()
    status = custody(config, "status")
    assert status.returncode == 1
    assert status.stderr.strip().splitlines()[-1].startswith("custody: registry: database_url: the registry is at "
                                                             "revision 0099_from_the_future")


def previous_revision() -> tuple[str, str]:
    """(the newest shipped migration, the one before it)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head, str(ScriptDirectory.from_config(config).get_revision(head).down_revision)


def at_revision(engine: Engine) -> str:
    with engine.connect() as db:
        return db.execute(text("SELECT version_num FROM alembic_version")).scalar_one()


@pytest.mark.postgres
def test_an_upgrade_applies_the_pending_migration_and_says_so(tmp_path: Path, postgres_schema_factory) -> None:  # type: ignore[no-untyped-def]
    head, before = previous_revision()
    schema = postgres_schema_factory()
    engine = open_registry(POSTGRES_URL, schema)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes.update(connection=connection, schema=schema)
        command.downgrade(config, before)
    custody_config = write_config(tmp_path, f'database_url = "{POSTGRES_URL}"\ndatabase_schema = "{schema}"\n')
    result = custody(custody_config, "--log-format", "json", "status")
    assert result.returncode == 0, result.stderr
    said = [json.loads(line)["message"] for line in result.stderr.splitlines()]
    assert said == [f"registry: upgrading from revision {before}, 1 migration to apply", f"registry: upgraded to revision {head}"]
    assert at_revision(engine) == head


@pytest.mark.postgres
def test_a_failed_migration_is_one_line_and_leaves_the_registry_as_it_was(tmp_path: Path, postgres_schema_factory) -> None:  # type: ignore[no-untyped-def]
    """The registry claims the revision before the newest but already has its changes, so applying
    the newest fails (as a migration meeting unexpected data would); PostgreSQL rolls it back."""
    _, before = previous_revision()
    schema = postgres_schema_factory()
    engine = open_registry(POSTGRES_URL, schema)
    with engine.begin() as db:
        db.execute(text("UPDATE alembic_version SET version_num = :before"), {"before": before})
    custody_config = write_config(tmp_path, f'database_url = "{POSTGRES_URL}"\ndatabase_schema = "{schema}"\n')
    result = custody(custody_config, "status")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("custody: registry: migration failed, the registry is left as it was before it: ")
    assert "Traceback" not in result.stderr
    assert at_revision(engine) == before


def test_a_second_service_on_the_same_port_is_one_line_naming_the_key(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, f"[service]\nlisten_port = {port}\njitter_seconds = 0\n")
    first = Service(config, port)
    try:
        first.wait_for_metric('custody_sync_duration_seconds_count{source="ann"}')
        second = custody(config, "run")
        assert second.returncode == 2
        assert second.stderr.strip().splitlines()[-1] == (
            f"custody: config error: service.listen_port: cannot listen on 127.0.0.1:{port}: Address already in use")
        assert "Traceback" not in second.stderr
        first.assert_alive()
    finally:
        assert first.stop() == 0


def test_an_unknown_listen_host_names_its_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[service]\nlisten_host = "no-such-host.invalid"\n')
    result = custody(config, "run")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        "custody: config error: service.listen_host: cannot listen on no-such-host.invalid:9464:")


def test_the_systemd_unit_verifies_and_keeps_its_hardening(tmp_path: Path) -> None:
    unit = (DEPLOY / "custody.service").read_text()
    for setting in ("DynamicUser=yes", "StateDirectory=custody", "ProtectSystem=strict", "ProtectHome=yes",
                    "PrivateTmp=yes", "NoNewPrivileges=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
                    "ExecReload=/bin/kill -HUP $MAINPID", "KillMode=mixed", "RestartPreventExitStatus=2"):
        assert setting in unit.splitlines(), setting
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit's syntax is not verified")
    installed = Path(sys.executable).parent / "custody"
    assert installed.exists(), "custody is not installed in this environment"
    copy = tmp_path / "custody.service"
    copy.write_text(unit.replace("/opt/custody/bin/custody", str(installed)))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=120)
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "custody.service" in line]
    assert (result.returncode, ours) == (0, [])


def test_the_container_runs_as_a_user_checks_healthz_and_compose_wires_postgres() -> None:
    """Docker cannot build here; this holds the files to what the README promises."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim$", dockerfile, re.MULTILINE)
    assert re.search(r"^USER custody$", dockerfile, re.MULTILINE)
    assert "http://127.0.0.1:9464/healthz" in dockerfile.split("HEALTHCHECK", 1)[1]
    assert re.search(r'^CMD \["run"\]$', dockerfile, re.MULTILINE)
    for copied in re.findall(r"^COPY (?!--)(\S+)", dockerfile, re.MULTILINE):
        assert (DEPLOY.parent / copied).exists(), copied
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    custody_service, postgres = compose["services"]["custody"], compose["services"]["postgres"]
    assert (DEPLOY / custody_service["build"]["context"] / custody_service["build"]["dockerfile"]).exists()
    assert custody_service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert custody_service["environment"]["CUSTODY_DATABASE_URL"].startswith(
        f"postgresql://{postgres['environment']['POSTGRES_USER']}:")
    assert "/etc/custody/custody.toml" in " ".join(custody_service["volumes"])

