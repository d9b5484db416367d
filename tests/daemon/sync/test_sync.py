"""The sync engine end to end: archives in, one registry out, whatever happens on the way."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from config.policy import Policy
from config.sections import RepConfig
from config.settings import Settings
from connectors.maildir import MaildirConnector, MaildirSettings
from connectors.records import Batch
from daemon.sync import engine as sync_engine
from daemon.sync.engine import sync_source
from registry.models import Rep, Source
from registry.status import source_statuses
from registry.store import open_registry
from tests.support.mail import conversation, message, write_maildir
from tests.support.registry import message_count, snapshot
from tests.support.sources import opened

POLICY = Policy(company_domains=["acme.test"])
REPS = [RepConfig(email="ann@acme.test", name="Ann"), RepConfig(email="tom@acme.test", name="Tom")]


def maildir_source(name: str, path: Path, owner: str) -> MaildirSettings:
    return MaildirSettings(name=name, path=path, owner=owner)


def settings_for(tmp_path: Path, *sources: MaildirSettings) -> Settings:
    return Settings(data_dir=tmp_path, reps=REPS, sources=list(sources), batch_size=50)


def test_the_same_message_in_two_folders_and_two_mailboxes_is_stored_once(engine: Engine, tmp_path: Path) -> None:
    shared = message("bo@shop.test", "ann@acme.test, tom@acme.test", message_id="<shared@shop.test>")
    ann = write_maildir(tmp_path / "ann", {"INBOX": [shared], "Archive": [shared]})
    tom = write_maildir(tmp_path / "tom", {"INBOX": [shared]})
    settings = settings_for(tmp_path, maildir_source("ann", ann, "ann@acme.test"), maildir_source("tom", tom, "tom@acme.test"))
    for source in settings.sources:
        assert sync_source(engine, settings, POLICY, source).ok
    state = snapshot(engine)
    assert state["messages"] == [("shared@shop.test", "")]
    assert state["interactions"] == [
        ("shared@shop.test", "ann@acme.test", "bo@shop.test", "inbound", "company"),
        ("shared@shop.test", "tom@acme.test", "bo@shop.test", "inbound", "company"),
    ]


def test_syncing_again_changes_nothing(engine: Engine, tmp_path: Path) -> None:
    ann = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test", "li@qq.com"], 120)})
    settings = settings_for(tmp_path, maildir_source("ann", ann, "ann@acme.test"))
    first = sync_source(engine, settings, POLICY, settings.sources[0])
    before = snapshot(engine)
    with engine.begin() as db:
        db.execute(Source.__table__.update().values(cursor=None))
    again = sync_source(engine, settings, POLICY, settings.sources[0])
    assert (first.messages, again.messages) == (120, 120)
    assert snapshot(engine) == before


def test_a_folder_of_broken_mail_is_counted_and_loses_none_of_the_good_ones(engine: Engine, tmp_path: Path) -> None:
    good = conversation("ann@acme.test", ["bo@shop.test"], 20)
    broken = [
        b"From: bo@shop.test\nTo: ann@acme.test\nSubj",
        b"From: bo@shop.test\nTo: ann@acme.test\nDate: 31 Februar 20x6\n\nbody",
        b"From: \xc3\x28\xff <bo@shop.test>\nTo: ann@acme.test\nDate: Mon, 2 Mar 2026 09:00:00 +0000\n"
        b"Subject: \xe9t\xe9 =?utf-8?q?=E2=82?=\nMessage-ID: <latin@shop.test>\n\n",
        b"From: =?garbage?x?zzz?= <bo@shop.test>\nTo: ann@acme.test\nDate: Mon, 2 Mar 2026 09:00:00 +0000\n"
        b"Subject: =?utf-8?b?!!!?=\nMessage-ID: <garbage@shop.test>\n\n",
        b"From: bo@shop.test\nTo: ann@acme.test\nDate: Mon, 2 Mar 2026 09:00:00 +0000\nX-Long: " + b"y" * 10_000
        + b"\nSubject: " + b"z" * 10_000 + b"\nMessage-ID: <long@shop.test>\n\n",
        b"\x00\x01\x02 not a message at all",
        b"",
    ]
    ann = write_maildir(tmp_path / "ann", {"INBOX": good + broken})
    settings = settings_for(tmp_path, maildir_source("ann", ann, "ann@acme.test"))
    report = sync_source(engine, settings, POLICY, settings.sources[0])
    keys = {m for m, _ in snapshot(engine)["messages"]}
    assert report.ok and report.skipped == 2
    assert {f"m{n}@mail.test" for n in range(20)} | {"latin@shop.test", "garbage@shop.test", "long@shop.test"} < keys
    assert len(keys) == 24, "dated by their delivery, the two without a Date are one message: same sender, recipient, second"
    assert source_statuses(engine)[0].skipped == 2


def test_a_missing_archive_marks_only_that_source_failing(engine: Engine, tmp_path: Path) -> None:
    ann = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 3)})
    settings = settings_for(tmp_path, maildir_source("gone", tmp_path / "nowhere", "tom@acme.test"),
                            maildir_source("ann", ann, "ann@acme.test"))
    reports = [sync_source(engine, settings, POLICY, s) for s in settings.sources]
    assert [r.ok for r in reports] == [False, True]
    statuses = {s.name: s for s in source_statuses(engine)}
    assert statuses["gone"].status == "failing" and "does not exist" in statuses["gone"].last_error
    assert statuses["ann"].status == "ok"


def test_configured_reps_get_names_and_managers_and_others_are_colleagues(engine: Engine, tmp_path: Path) -> None:
    ann = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 2)})
    settings = Settings(data_dir=tmp_path, sources=[maildir_source("ann", ann, "ann@acme.test")],
                        reps=[RepConfig(email="Ann@acme.test", name="Ann", manager="boss@acme.test")])
    sync_source(engine, settings, POLICY, settings.sources[0])
    with engine.connect() as db:
        reps = {r.email: r for r in db.execute(select(Rep))}
    assert reps["ann@acme.test"].role == "rep"
    assert reps["ann@acme.test"].manager_id == reps["boss@acme.test"].id
    assert reps["boss@acme.test"].role == "colleague"


def write_config(path: Path, archive: Path, registry_target: tuple[str, str | None]) -> Path:
    url, schema = registry_target
    database = f'database_url = "{url}"\n' + (f'database_schema = "{schema}"\n' if schema else "")
    path.write_text(
        f'data_dir = "{path.parent / "data"}"\n{database}batch_size = 100\n'
        'policy_file = "policy.yaml"\n'
        f'[[sources]]\nname = "ann"\nkind = "maildir"\npath = "{archive}"\nowner = "ann@acme.test"\n'
    )
    (path.parent / "policy.yaml").write_text("company_domains: [acme.test]\n")
    return path


def run_sync(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "daemon.cli.app", "--config", str(config), "sync"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_midway(config: Path, engine: Engine, total: int, rng: random.Random) -> bool:
    """Start a sync and SIGKILL it once part of the archive is stored; False if it finished first."""
    target = rng.randint(total // 10, total * 8 // 10)
    process = run_sync(config)
    while process.poll() is None:
        if message_count(engine) >= target:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.01)
    return False


def test_sigkill_mid_sync_then_restart_gives_the_registry_of_an_uninterrupted_sync(
    registry_target: tuple[str, str | None], tmp_path: Path
) -> None:
    mails = conversation("ann@acme.test", [f"c{n}@client{n % 40}.test" for n in range(97)], 4000)
    archive = write_maildir(tmp_path / "ann", {"INBOX": mails[:2500], "Sent": mails[2500:]})
    reference_target = (f"sqlite:///{tmp_path / 'reference.db'}", None)
    reference = tmp_path / "reference"
    reference.mkdir()
    assert run_sync(write_config(reference / "custody.toml", archive, reference_target)).wait() == 0

    crashed = tmp_path / "crashed"
    crashed.mkdir()
    config = write_config(crashed / "custody.toml", archive, registry_target)
    engine = open_registry(*registry_target)
    rng = random.Random(1)
    kills = sum(kill_midway(config, engine, len(mails), rng) for _ in range(3))
    finish = run_sync(config)
    assert finish.wait() == 0, finish.stderr.read() if finish.stderr else ""
    assert kills >= 1
    expected = snapshot(open_registry(*reference_target))
    assert snapshot(engine) == expected
    assert len(expected["messages"]) == len(mails)


@pytest.mark.parametrize(("join_seconds", "messages", "stored_when_told"), [
    pytest.param(3600.0, 100, [40] * 8 + [80] * 8 + [100] * 4, id="read-quickly-eight-at-a-time"),
    pytest.param(0.0, 20, [5, 10, 15, 20], id="each-waited-its-time"),
])
def test_batches_are_stored_eight_to_a_transaction_or_once_the_first_has_waited_its_time(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, join_seconds: float, messages: int,
    stored_when_told: list[int],
) -> None:
    """Progress is told of each batch once it is stored. Mail read quickly is stored eight batches
    at a time, the rest at the source's end; mail that comes slowly (a throttled server) is stored
    as it comes, not eight batches later."""
    monkeypatch.setattr(sync_engine, "JOIN_SECONDS", join_seconds)
    ann = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], messages)})
    settings = settings_for(tmp_path, maildir_source("ann", ann, "ann@acme.test")).model_copy(update={"batch_size": 5})
    told: list[int] = []

    report = sync_source(engine, settings, POLICY, settings.sources[0],
                         progress=lambda _source, _items: told.append(message_count(engine)))

    assert (report.ok, report.messages, report.batches) == (True, messages, messages // 5)
    assert told == stored_when_told


class _ConnectorWithABug:
    """Yields one good batch, then fails the way a bug would: with no connector error class at all."""

    def __init__(self, maildir: Path) -> None:
        self.inner = opened(MaildirConnector, path=maildir, batch_size=1)

    def sync(self, cursor: dict | None) -> Iterator[Batch]:
        batches = self.inner.sync(cursor)
        yield next(batches)
        error = KeyError("uidvalidity")
        error.add_note("at INBOX/2")
        raise error


def test_a_source_that_fails_in_any_way_keeps_what_it_stored_and_names_where_it_stopped(
        engine: Engine, tmp_path: Path) -> None:
    ann = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 3)})
    tom = write_maildir(tmp_path / "tom", {"INBOX": conversation("tom@acme.test", ["li@qq.com"], 2, prefix="t")})
    settings = settings_for(tmp_path, maildir_source("ann", ann, "ann@acme.test"),
                            maildir_source("tom", tom, "tom@acme.test"))

    broken = sync_source(engine, settings, POLICY, settings.sources[0], connector=_ConnectorWithABug(ann))
    fine = sync_source(engine, settings, POLICY, settings.sources[1])

    assert (broken.ok, broken.messages, fine.ok, fine.messages) == (False, 1, True, 2)
    statuses = {s.name: s for s in source_statuses(engine)}
    assert statuses["ann"].status == "failing"
    assert statuses["ann"].last_error == "unexpected KeyError: 'uidvalidity' at INBOX/2"
    assert message_count(engine) == 3
