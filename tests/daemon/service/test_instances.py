"""Two `custody run` daemons on one PostgreSQL registry, as IT runs them for availability.

Both tick every job; the work is claimed in the registry (each source, each notification, the
departure, outbox and coverage rounds), so one daemon can be killed with SIGKILL in the middle of
it and the other finishes: every source synced once into the registry and every letter at the relay once.
"""

from __future__ import annotations

import socket
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, func, select, update

from config.policy import load_policy
from config.settings import load_settings
from daemon.runtime import Runtime
from daemon.service.scheduler import Service as Daemon
from daemon.sync.engine import sync_source
from demo.company import DemoCompany
from registry.models import Interaction, Message, Notification, NotificationState, RoundLease, Source, SourceStatus, utcnow
from registry.store import open_registry
from tests.conftest import POSTGRES_URL
from tests.daemon.outbox.test_outbox_crash import sent_folder_settings
from tests.servers.dovecot import DovecotServer
from tests.servers.smtp import FilingRelay
from tests.support.demo import copy_company
from tests.support.mail import conversation, write_maildir
from tests.support.registry import message_count
from tests.support.service import Service, free_port, maildir_source, service_config, wait_until

LEAVERS = ("wang.lei@northwind-demo.example", "priya.nair@northwind-demo.example")
SETTLED = {NotificationState.SENT}


def shared_policy(company: DemoCompany) -> None:
    """Letters go out at once, unpaced, and both steps are due now, so the outbox has work to share."""
    policy = yaml.safe_load(company.policy_path.read_text())
    policy["ownership"] = {"requires_approval": False, "grace_period_hours": 0}
    policy["dispatch"] = {"quiet_hours": None, "per_mailbox_per_hour": 0, "per_domain_per_hour": 0}
    policy["notifications"]["steps"] = [
        {"name": "farewell", "template": "farewell", "days_from_effective": -2, "sender": "shared", "cc_successor": True},
        {"name": "introduction", "template": "introduction", "days_from_effective": -1, "sender": "successor"},
    ]
    company.policy_path.write_text(yaml.safe_dump(policy))


def instance_config(company: DemoCompany, name: str, schema: str, relay: FilingRelay, dovecot: DovecotServer) -> tuple[Path, int]:
    """The demo config on the shared registry, with this instance's own listen port."""
    port = free_port()
    demo = company.config_path.read_text()
    config = company.config_path.with_name(f"custody-{name}.toml")
    config.write_text(f'database_url = "{POSTGRES_URL}"\ndatabase_schema = "{schema}"\nlog_level = "INFO"\n' + demo + f"""
[service]
listen_port = {port}
jitter_seconds = 0
handover_interval_minutes = 1
hr_folder = "hr"

[smtp]
host = "127.0.0.1"
port = {relay.port}
security = "plain"
""" + sent_folder_settings(dovecot, 'filed_by = "relay"\nrelay_copy_wait_seconds = 3\n'))
    return config, port


def reference_counts(company: DemoCompany, tmp_path: Path) -> tuple[int, int]:
    """Messages and interactions of the same company synced by one process, one source after another."""
    engine = open_registry(f"sqlite:///{tmp_path / 'reference.db'}", None)
    settings = load_settings(company.config_path)
    policy = load_policy(settings.policy_file)
    for source in settings.sources:
        assert sync_source(engine, settings, policy, source).ok
    counts = registry_counts(engine)
    engine.dispose()
    return counts


def registry_counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as db:
        return (db.execute(select(func.count()).select_from(Message)).scalar_one(),
                db.execute(select(func.count()).select_from(Interaction)).scalar_one())


def progress(engine: Engine) -> dict[str, object]:
    """What the registry shows of the work: source states, the last departure round, letter states."""
    with engine.connect() as db:
        synced = db.execute(select(Source.name, Source.status, Source.last_success, Source.lease_owner)).all()
        last_round = db.execute(select(RoundLease.last_finished).where(RoundLease.name == "departures")).scalar()
        states = Counter(db.execute(select(Notification.state)).scalars())
    return {"sources": {s.name: (s.status, s.last_success, s.lease_owner) for s in synced},
            "last_departure_round": last_round, "letters": dict(states)}


def sources_done(seen: dict[str, object], sources: int) -> bool:
    synced = seen["sources"]
    assert isinstance(synced, dict)
    return len(synced) == sources and all(status == SourceStatus.OK and not owner for status, _, owner in synced.values())


def letters_done(seen: dict[str, object], since: datetime) -> bool:
    """A departure round finished after `since` (so every late customer has joined its plan), and
    every letter is sent."""
    last_round, states = seen["last_departure_round"], seen["letters"]
    assert isinstance(states, dict)
    return last_round is not None and last_round > since and sum(states.values()) > 0 and set(states) <= SETTLED


def holding(engine: Engine, service: Service, work: str) -> bool:
    """Whether the daemon holds a lease on a source now, or on a notification it is sending."""
    owner = f"{socket.gethostname()}:{service.process.pid}"
    query = (select(Source.id).where(Source.lease_owner == owner) if work == "sync" else
             select(Notification.id).where(Notification.lease_owner == owner,
                                           Notification.state == NotificationState.SENDING))
    with engine.connect() as db:
        return db.execute(query.limit(1)).first() is not None


@pytest.mark.postgres
@pytest.mark.parametrize("work", ["sync", "send"])
def test_two_daemons_share_the_work_and_one_killed_mid_work_loses_nothing_and_doubles_nothing(
    work: str, tmp_path: Path, demo_company_today: DemoCompany, filing_relay: FilingRelay, dovecot: DovecotServer,
    postgres_schema_factory,  # type: ignore[no-untyped-def]
) -> None:
    """One daemon is killed while it holds a source it is syncing, or a letter it is sending."""
    company = copy_company(demo_company_today, tmp_path / "northwind")
    shared_policy(company)
    expected = reference_counts(company, tmp_path)
    hr = company.root / "hr"
    hr.mkdir()
    tomorrow = date.today() + timedelta(days=1)
    (hr / "leavers.csv").write_text("email,action,effective_date\n"
                                    + "".join(f"{email},leaver,{tomorrow}\n" for email in LEAVERS))
    schema = postgres_schema_factory()
    daemons = [Service(*instance_config(company, name, schema, filing_relay, dovecot)) for name in ("a", "b")]
    engine = open_registry(POSTGRES_URL, schema)
    try:
        doomed = wait_until(lambda: next((d for d in daemons if d.assert_alive() or holding(engine, d, work)), None),
                            f"a daemon in a {work}", seconds=180)
        doomed.kill()
        [survivor] = [d for d in daemons if d is not doomed]
        sources = len(load_settings(company.config_path).sources)
        try:
            wait_until(lambda: survivor.assert_alive() or sources_done(progress(engine), sources),
                       "the survivor synced every source", seconds=300)
            synced = utcnow()
            wait_until(lambda: survivor.assert_alive() or letters_done(progress(engine), synced),
                       "the survivor sent every letter", seconds=300)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{progress(engine)}\n" + "\n".join(survivor.lines[-40:])) from None
        assert survivor.stop() == 0
        with engine.connect() as db:
            sent = set(db.execute(select(Notification.message_id_header)
                                  .where(Notification.state == NotificationState.SENT)).scalars())
        counts = registry_counts(engine)
    finally:
        for daemon in daemons:
            daemon.kill()
        engine.dispose()
    received = Counter(filing_relay.message_ids())
    assert [mid for mid, n in received.items() if n > 1] == []
    assert set(received) == sent
    assert counts == expected
    assert not [entry for entry in survivor.messages() if entry["level"] == "ERROR"]


def test_a_source_another_daemon_synced_lately_is_left_to_it_until_half_an_interval_has_passed(tmp_path: Path) -> None:
    """Each instance ticks every source; with two, a source is still synced about once an interval. The
    second daemon has been running for two hours when the first syncs the source."""
    archive = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 3, "early")})
    config = service_config(tmp_path, free_port(), maildir_source("ann", archive), extra="sync_workers = 0\n",
                            service="sync_interval_minutes = 60\n")
    first, second = Daemon(Runtime(config)), Daemon(Runtime(config))
    second.started_at = utcnow() - timedelta(hours=2)
    for daemon in (first, second):
        daemon.schedule()

    run_job(first, "sync:ann")
    write_maildir(archive, {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 2, "late")})
    run_job(second, "sync:ann")
    left_alone = message_count(first.rt.engine)
    with first.rt.engine.begin() as db:
        db.execute(update(Source).where(Source.name == "ann").values(last_success=utcnow() - timedelta(minutes=31)))
    run_job(second, "sync:ann")

    assert left_alone == 3
    assert message_count(first.rt.engine) == 5


def run_job(daemon: Daemon, job_id: str) -> None:
    job = daemon.scheduler.get_job(job_id)
    job.func(*job.args)
