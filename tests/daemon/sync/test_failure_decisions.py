"""What the sync engine decides when a source fails, by the failure's class, and how it holds to it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.exc import OperationalError

from config.policy import Policy
from config.sections import RepConfig
from config.settings import Settings
from connectors.base import SourceSettings
from connectors.errors import CursorInvalid, TransientError
from connectors.imap import ImapSettings
from connectors.maildir import MaildirConnector, MaildirSettings
from connectors.records import Batch
from daemon.sync.engine import sync_source
from daemon.sync.failures import classify
from registry.models import Source, utcnow
from registry.store import open_registry
from tests.servers.dovecot import DovecotServer
from tests.support.mail import conversation, write_maildir
from tests.support.registry import snapshot

POLICY = Policy(company_domains=["acme.test"])


def settings_with(tmp_path: Path, source: SourceSettings) -> Settings:
    return Settings(data_dir=tmp_path, reps=[RepConfig(email="ann@acme.test")], sources=[source])


def row(engine: Engine, name: str) -> Any:
    with engine.connect() as db:
        return db.execute(select(Source).where(Source.name == name)).one()


def test_refused_credentials_stop_the_source_until_custody_restarts_or_a_person_syncs(
        engine: Engine, tmp_path: Path, dovecot: DovecotServer) -> None:
    dovecot.add_user("ann", "right-password")
    dovecot.append("ann", "INBOX", conversation("ann@acme.test", ["bo@shop.test"], 2))
    wrong = ImapSettings(name="ann", host="127.0.0.1", port=dovecot.port, security="plain",
                         username=dovecot.login("ann"), password="wrong-password", owner="ann@acme.test")
    service_started = utcnow()

    failed = sync_source(engine, settings_with(tmp_path, wrong), POLICY, wrong, held_since=service_started)
    held = sync_source(engine, settings_with(tmp_path, wrong), POLICY, wrong, held_since=service_started)

    assert failed.failure is not None and "login as" in failed.error and "wrong-password" not in failed.error
    assert (row(engine, "ann").status, row(engine, "ann").retry_at) == ("auth_failed", None)
    assert held.held.startswith("stopped until its settings change or custody restarts") and not held.claimed_at
    right = wrong.model_copy(update={"password": SecretStr("right-password")})
    restarted = sync_source(engine, settings_with(tmp_path, right), POLICY, right, held_since=utcnow())
    assert restarted.ok and restarted.messages == 2
    assert (row(engine, "ann").status, row(engine, "ann").failures) == ("ok", 0)


def test_changed_settings_end_the_stop_at_once(engine: Engine, tmp_path: Path, dovecot: DovecotServer) -> None:
    dovecot.add_user("ann", "right-password")
    wrong = ImapSettings(name="ann", host="127.0.0.1", port=dovecot.port, security="plain",
                         username="someone-else", password="right-password")
    service_started = utcnow()
    assert not sync_source(engine, settings_with(tmp_path, wrong), POLICY, wrong, held_since=service_started).ok

    fixed = wrong.model_copy(update={"username": dovecot.login("ann")})

    assert sync_source(engine, settings_with(tmp_path, fixed), POLICY, fixed, held_since=service_started).ok


class _Throttled(MaildirConnector):
    """A server answering 'too many requests, come back in ten minutes'."""

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        raise TransientError("server busy", retry_after=600)


def test_a_transient_failure_is_retried_after_backoff_and_never_before_the_server_asked(
        engine: Engine, tmp_path: Path) -> None:
    source = MaildirSettings(name="ann", path=write_maildir(tmp_path / "ann", {}))
    settings = settings_with(tmp_path, source)
    service_started = utcnow()

    report = sync_source(engine, settings, POLICY, source, connector=_Throttled(source), held_since=service_started)
    held = sync_source(engine, settings, POLICY, source, held_since=service_started)
    by_hand = sync_source(engine, settings, POLICY, source)

    assert report.failure is not None and report.failure.status == "retrying"
    assert report.retry_at is not None and report.retry_at - utcnow() > timedelta(seconds=590)
    assert held.held.startswith("waiting until") and "server busy" in held.held
    assert by_hand.ok and row(engine, "ann").retry_at is None


@pytest.mark.parametrize(("failures", "minutes"), [(1, 1), (2, 2), (5, 16), (12, 60)])
def test_backoff_doubles_with_each_failure_up_to_an_hour(
        engine: Engine, tmp_path: Path, failures: int, minutes: int) -> None:
    source = MaildirSettings(name="ann", path=write_maildir(tmp_path / "ann", {}))
    settings = settings_with(tmp_path, source)

    class _Down(MaildirConnector):
        def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
            raise TransientError("connection refused")

    for _ in range(failures):
        report = sync_source(engine, settings, POLICY, source, connector=_Down(source))

    assert report.retry_at is not None
    waited = report.retry_at - utcnow()
    assert timedelta(minutes=minutes) - timedelta(seconds=30) < waited <= timedelta(minutes=minutes)


class _Reindexed(MaildirConnector):
    """A maildir whose server-side index was rebuilt: cursors of an older `epoch` mean nothing now."""

    epoch = 1

    def sync(self, cursor: dict[str, Any] | None) -> Iterator[Batch]:
        if cursor and cursor.get("epoch") != self.epoch:
            raise CursorInvalid(f"cursor of epoch {cursor.get('epoch')}, server is at {self.epoch}")
        inner = {k: v for k, v in (cursor or {}).items() if k != "epoch"}
        for batch in super().sync(inner or None):
            yield Batch(batch.records, {**batch.cursor, "epoch": self.epoch}, batch.skipped)


class _Rebuilt(_Reindexed):
    epoch = 2


def test_an_invalid_cursor_is_dropped_and_the_source_read_again_without_duplicates(
        engine: Engine, tmp_path: Path) -> None:
    mails = conversation("ann@acme.test", ["bo@shop.test"], 8)
    root = write_maildir(tmp_path / "ann", {"INBOX": mails[:5]})
    source = MaildirSettings(name="ann", path=root, owner="ann@acme.test")
    settings = settings_with(tmp_path, source)
    assert sync_source(engine, settings, POLICY, source, connector=_Reindexed(source, 2)).messages == 5
    write_maildir(root, {"INBOX": mails[5:]})

    report = sync_source(engine, settings, POLICY, source, connector=_Rebuilt(source, 2))

    assert report.ok and report.messages == 8
    assert row(engine, "ann").cursor["epoch"] == 2
    reference = open_registry(f"sqlite:///{tmp_path / 'reference.db'}")
    sync_source(reference, settings, POLICY, source, connector=_Rebuilt(source))
    assert snapshot(engine) == snapshot(reference)


@pytest.mark.postgres
def test_a_deadlock_with_another_writer_is_retried_in_seconds_not_at_the_next_interval(postgres_engine: Engine) -> None:
    """Two daemons storing the same new customers in one PostgreSQL can deadlock; the loser's batch
    rolled back whole and is simply stored again."""
    error = deadlock_between_two_writers(postgres_engine)

    failure = classify(error, "ann")

    now = utcnow()
    assert failure.status == "retrying" and "deadlock detected" in failure.error
    assert [failure.retry_at(now, n) - now for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (5, 10, 20)]


def test_a_registry_another_writer_keeps_locked_is_retried_in_seconds(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    open_registry(url).dispose()
    holder = create_engine(url)
    impatient = create_engine(url, connect_args={"timeout": 0})
    with holder.connect() as held:
        held.exec_driver_sql("BEGIN IMMEDIATE")  # another writer's transaction, open
        with pytest.raises(OperationalError) as locked, impatient.begin() as db:
            db.execute(Source.__table__.insert().values(name="ann", kind="maildir"))

    failure = classify(locked.value, "ann")

    assert failure.status == "retrying" and "database is locked" in failure.error


def deadlock_between_two_writers(engine: Engine) -> BaseException:
    """Each of two transactions updates a row, then the other's: PostgreSQL ends one of them."""
    with engine.begin() as db:
        db.exec_driver_sql("CREATE TABLE pair (id integer PRIMARY KEY, n integer)")
        db.exec_driver_sql("INSERT INTO pair VALUES (1, 0), (2, 0)")
    both_hold_one = threading.Barrier(2)
    errors: list[BaseException] = []

    def update(mine: int, theirs: int) -> None:
        try:
            with engine.begin() as db:
                db.exec_driver_sql(f"UPDATE pair SET n = n + 1 WHERE id = {mine}")
                both_hold_one.wait()
                db.exec_driver_sql(f"UPDATE pair SET n = n + 1 WHERE id = {theirs}")
        except OperationalError as error:
            errors.append(error)

    writers = [threading.Thread(target=update, args=pair) for pair in ((1, 2), (2, 1))]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert len(errors) == 1
    return errors[0]
