"""Sources read by reader processes while this process writes the registry: the same registry as
reading them one by one, whatever happens to a reader or to the writer."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from config.policy import Policy
from config.sections import RepConfig
from config.settings import Settings
from connectors.maildir import MaildirSettings
from daemon.sync.engine import sync_sources
from daemon.sync.readers import ReaderPool
from registry.models import Message
from registry.status import source_statuses
from registry.store import open_registry
from tests.support.mail import conversation, write_maildir
from tests.support.processes import gone, named_descendants
from tests.support.registry import message_count, snapshot

UP = re.compile(r"reader process \d+ is up")
POLICY = Policy(company_domains=["acme.test"])
REPS = [RepConfig(email=f"rep{n}@acme.test", name=f"Rep {n}") for n in range(4)]


def mailboxes(root: Path, count: int = 4, messages: int = 300) -> list[MaildirSettings]:
    """`count` rep mailboxes sharing some customers, so readers race to create the same contacts."""
    sources = []
    for n in range(count):
        rep = f"rep{n}@acme.test"
        mails = conversation(rep, [f"buyer{c}@client{c % 7}.test" for c in range(n, n + 25)], messages, prefix=f"r{n}-")
        path = write_maildir(root / f"rep{n}", {"INBOX": mails[: messages // 2], "Sent": mails[messages // 2:]})
        sources.append(MaildirSettings(name=f"rep{n}", path=path, owner=rep))
    return sources


def settings_for(tmp_path: Path, sources: list[MaildirSettings], workers: int) -> Settings:
    return Settings(data_dir=tmp_path, reps=REPS, sources=sources, batch_size=40, sync_workers=workers,
                    sync_readers_after_seconds=0)


def reference(tmp_path: Path, sources: list[MaildirSettings]) -> dict[str, object]:
    engine = open_registry(f"sqlite:///{tmp_path / 'reference.db'}")
    assert all(r.ok for r in sync_sources(engine, settings_for(tmp_path, sources, 0), POLICY, sources))
    return snapshot(engine)


def reader_pids(parent: int) -> list[int]:
    """The readers among `parent`'s descendants, started as a new interpreter or by its launcher."""
    return named_descendants(parent, "custody-reader")


def command_line(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def test_reader_processes_build_the_registry_of_an_in_process_sync(engine: Engine, tmp_path: Path) -> None:
    """Mailboxes large enough that this process cannot read them all while the readers start."""
    sources = mailboxes(tmp_path, messages=1500)
    seen: set[int] = set()
    reports = sync_sources(engine, settings_for(tmp_path, sources, 2), POLICY, sources,
                           progress=lambda _source, _items: seen.update(reader_pids(os.getpid())))
    assert [(r.source, r.ok, r.messages) for r in reports] == [(s.name, True, 1500) for s in sources]
    assert snapshot(engine) == reference(tmp_path, sources)
    assert len(seen) == 2
    assert gone(seen)


def test_reader_log_lines_reach_this_process_stderr_as_it_is_now(
    engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A live progress bar swaps sys.stderr to print log lines above itself; a reader writing to the
    terminal directly would cut into it. Mailboxes large enough that the readers are up before this
    process, reading while they start, has read them all itself."""
    sources = mailboxes(tmp_path, count=3, messages=1500)
    settings = settings_for(tmp_path, sources, 2).model_copy(update={"log_level": "DEBUG"})
    seen: set[int] = set()
    sync_sources(engine, settings, POLICY, sources, progress=lambda *_: seen.update(reader_pids(os.getpid())))
    logged = [json.loads(line)["message"] for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert {int(text.split()[2]) for text in logged if text.startswith("reader process ")} <= seen
    assert any(re.fullmatch(r"reader process \d+ reads source rep\d", text) for text in logged)


def test_a_source_begun_here_while_the_reader_starts_is_finished_by_the_reader(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One large mailbox: this process reads its first batches during the reader's start-up and
    hands the rest over from the cursor of the last batch it stored. The reader's setup, with the
    policy's free-mail domains, is larger than a pipe holds; handing it over must not wait for the
    reader's imports."""
    caplog.set_level(logging.DEBUG, logger="custody")
    sources = mailboxes(tmp_path, count=1, messages=4000)
    settings = settings_for(tmp_path, sources, 1).model_copy(update={"batch_size": 10})
    reports = sync_sources(engine, settings, POLICY, sources)
    assert "reading source rep0 here while a reader starts" in caplog.messages
    assert [(r.ok, r.messages) for r in reports] == [(True, 4000)]
    assert snapshot(engine) == reference(tmp_path, sources)


def test_a_sync_done_before_readers_are_due_starts_none(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Most syncs of a running daemon find little new: read here, they cost less than starting readers."""
    caplog.set_level(logging.DEBUG, logger="custody")
    sources = mailboxes(tmp_path, count=2, messages=20)
    settings = settings_for(tmp_path, sources, 2).model_copy(update={"sync_readers_after_seconds": 3600})
    assert all(r.ok for r in sync_sources(engine, settings, POLICY, sources))
    assert not [text for text in caplog.messages if text.startswith(("starting ", "reader "))]
    assert snapshot(engine) == reference(tmp_path, sources)


def test_readers_start_once_this_process_has_read_for_their_time_and_take_over(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Once the readers are started, this process goes on storing until the reader says it is up
    (held here, so a busy machine cannot let this process finish the source first), then hands over."""
    caplog.set_level(logging.DEBUG, logger="custody")
    sources = mailboxes(tmp_path, count=1, messages=4000)
    settings = settings_for(tmp_path, sources, 1).model_copy(
        update={"batch_size": 10, "sync_readers_after_seconds": 0.1, "log_level": "DEBUG"})
    said: list[str] = []

    def wait_for_a_started_reader(_source: str, _items: int) -> None:
        deadline = time.monotonic() + 60
        while "starting 1 reader processes" in caplog.messages and not any(UP.search(line) for line in said):
            assert time.monotonic() < deadline, "the reader never said it was up"
            said.extend(capsys.readouterr().err.splitlines())
            time.sleep(0.01)

    assert all(r.ok for r in sync_sources(engine, settings, POLICY, sources, progress=wait_for_a_started_reader))
    assert caplog.messages.index("reading source rep0 here while a reader starts") < caplog.messages.index(
        "starting 1 reader processes") < caplog.messages.index("reader 0 is up")
    assert any(re.search(r"reader process \d+ reads source rep0", line) for line in
               said + capsys.readouterr().err.splitlines())
    assert snapshot(engine) == reference(tmp_path, sources)


def test_once_every_reader_is_up_this_process_only_writes(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Reading a source here while both readers are busy would leave them blocked on full pipes."""
    caplog.set_level(logging.DEBUG, logger="custody")
    sources = mailboxes(tmp_path, count=8, messages=600)
    assert all(r.ok for r in sync_sources(engine, settings_for(tmp_path, sources, 2), POLICY, sources))
    said = [r.getMessage() for r in caplog.records]
    last_up = max(i for i, text in enumerate(said) if text.startswith("reader ") and text.endswith(" is up"))
    assert not [text for text in said[last_up:] if text.startswith("reading source ")]


def test_a_writer_waiting_on_idle_readers_is_answered_when_its_time_is_up(tmp_path: Path) -> None:
    """The writer waits for readers' events at most until batches it holds back are due to be stored."""
    with ReaderPool(settings_for(tmp_path, [], 1), POLICY, 1) as readers:
        assert readers.next_events(8, timeout=0.05) == []


def test_a_failing_source_fails_alone_while_the_others_are_read(engine: Engine, tmp_path: Path) -> None:
    sources = mailboxes(tmp_path, count=2)
    sources.insert(1, MaildirSettings(name="gone", path=tmp_path / "nowhere", owner="rep3@acme.test"))
    reports = sync_sources(engine, settings_for(tmp_path, sources, 2), POLICY, sources)
    assert [(r.source, r.ok) for r in reports] == [("rep0", True), ("gone", False), ("rep1", True)]
    statuses = {s.name: s for s in source_statuses(engine)}
    assert statuses["gone"].status == "failing" and "does not exist" in statuses["gone"].last_error


def test_a_batch_the_registry_refuses_fails_its_source_alone_and_the_next_sync_completes_it(
        engine: Engine, tmp_path: Path) -> None:
    """Deep in one mailbox, where a reader and not this process stores it, one message is refused
    by the database itself. Its source keeps the cursor of its last stored batch; the others finish."""
    sources = mailboxes(tmp_path, count=3, messages=1500)
    settings = settings_for(tmp_path, sources, 2)
    refuse_message(engine, "r1-1400@mail.test")

    first = sync_sources(engine, settings, POLICY, sources)

    assert [(r.source, r.ok) for r in first] == [("rep0", True), ("rep1", False), ("rep2", True)]
    statuses = {s.name: s for s in source_statuses(engine)}
    assert statuses["rep1"].status == "failing" and "refused by the test" in statuses["rep1"].last_error
    assert first[1].messages < 1500 and message_count(engine) == 3000 + first[1].messages
    allow_every_message(engine)
    assert all(r.ok for r in sync_sources(engine, settings, POLICY, sources))
    assert snapshot(engine) == reference(tmp_path, sources)


def refuse_message(engine: Engine, key: str) -> None:
    """A trigger that fails the insert of one message, as a full disk or a broken constraint would."""
    with engine.begin() as db:
        if engine.dialect.name == "sqlite":
            db.exec_driver_sql(f"CREATE TRIGGER refuse BEFORE INSERT ON message WHEN NEW.message_key = '{key}' "
                               "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
            return
        db.exec_driver_sql("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                           "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$")
        db.exec_driver_sql(f"CREATE TRIGGER refuse BEFORE INSERT ON message FOR EACH ROW "
                           f"WHEN (NEW.message_key = '{key}') EXECUTE FUNCTION refuse()")


def allow_every_message(engine: Engine) -> None:
    with engine.begin() as db:
        db.exec_driver_sql("DROP TRIGGER refuse" + ("" if engine.dialect.name == "sqlite" else " ON message"))


def test_a_reader_killed_mid_source_fails_that_source_and_the_next_sync_completes_it(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="custody")
    sources = mailboxes(tmp_path, count=3, messages=1500)  # far more than a pipe buffers ahead
    settings = settings_for(tmp_path, sources, 2)
    stored: dict[str, int] = {}
    killed: list[int] = []

    def kill_the_readers(source: str, items: int) -> None:
        """Once both readers are up, this process only stores what they read: at the next batch of
        a source far from done, its reader is mid-source. Kill both readers then."""
        stored[source] = stored.get(source, 0) + items
        up = sum(1 for record in caplog.records if record.getMessage().endswith(" is up"))
        if up < 2:
            time.sleep(0.05)  # a busy machine starts readers slowly: the writer must not read everything meanwhile
        if not killed and up == 2 and stored[source] < 1000:
            killed.extend(reader_pids(os.getpid()))
            for pid in killed:
                os.kill(pid, signal.SIGKILL)

    first = sync_sources(engine, settings, POLICY, sources, progress=kill_the_readers)
    assert len(killed) == 2
    assert any("reader process died" in r.error for r in first)
    assert all(r.ok for r in sync_sources(engine, settings, POLICY, sources))
    assert snapshot(engine) == reference(tmp_path, sources)


def test_a_sync_command_forks_its_readers_from_its_launcher_and_stores_what_an_in_process_sync_does(
    tmp_path: Path
) -> None:
    """`custody sync` forks a launcher before it opens the registry; its readers are forked from it
    with every module imported, not started as a new interpreter that imports them again."""
    sources = mailboxes(tmp_path, count=3, messages=1500)
    config, engine = sync_config(tmp_path, sources)
    writer = subprocess.Popen([sys.executable, "-m", "daemon.cli.app", "--config", str(config), "sync"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    readers = wait_for_progress(writer, engine)
    [launcher] = named_descendants(writer.pid, "custody-launch")
    assert set(readers) <= set(named_descendants(launcher, "custody-reader"))
    assert {command_line(pid) for pid in readers} == {command_line(writer.pid)}
    _, stderr = writer.communicate(timeout=120)
    assert writer.returncode == 0, stderr.decode()
    assert gone([launcher, *readers])
    assert snapshot(engine) == reference(tmp_path, sources)


def test_a_sync_command_without_readers_forks_no_launcher(tmp_path: Path) -> None:
    """With `sync_workers = 0` a launcher would only cost the writer copies of the pages it shares."""
    sources = mailboxes(tmp_path, count=3, messages=1500)
    config, engine = sync_config(tmp_path, sources, workers=0)
    writer = subprocess.Popen([sys.executable, "-m", "daemon.cli.app", "--config", str(config), "sync"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while writer.poll() is None and not message_count(engine):
        time.sleep(0.02)
    assert writer.poll() is None, "the sync finished before it could be looked at"
    assert named_descendants(writer.pid, "custody-launch") == []
    _, stderr = writer.communicate(timeout=120)
    assert writer.returncode == 0, stderr.decode()


def test_readers_and_the_launcher_exit_by_themselves_when_the_writer_is_killed(tmp_path: Path) -> None:
    sources = mailboxes(tmp_path, count=3, messages=1500)
    config, engine = sync_config(tmp_path, sources)
    writer = subprocess.Popen([sys.executable, "-m", "daemon.cli.app", "--config", str(config), "sync"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    readers = wait_for_progress(writer, engine)
    launchers = named_descendants(writer.pid, "custody-launch")
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert launchers and gone([*launchers, *readers])


LAUNCHER_UNUSABLE = {  # what happens before the launcher would be forked, and after
    "it is gone": ("pass", "os.kill(*named_descendants(os.getpid(), 'custody-launch'), signal.SIGKILL)"),
    "this process has a thread": ("threading.Thread(target=threading.Event().wait, daemon=True).start()", "pass"),
}


@pytest.mark.parametrize("what", LAUNCHER_UNUSABLE)
def test_readers_start_as_a_new_interpreter_when_the_launcher_is_unusable(tmp_path: Path, what: str) -> None:
    """A process that has a thread forks no launcher (a child could inherit a lock held); a launcher
    that died is replaced by new interpreters. Either way the sync stores everything, once."""
    sources = mailboxes(tmp_path, count=3, messages=1500)
    before, after = LAUNCHER_UNUSABLE[what]
    program = f"""
import os, signal, sys, threading
from pathlib import Path
from tests.daemon.sync.test_readers import POLICY, command_line, reader_pids, settings_for
from tests.support.processes import named_descendants
from connectors.maildir import MaildirSettings
from daemon.sync.engine import sync_sources
from daemon.sync.readers import reader_launcher
from registry.store import open_registry
sources = [MaildirSettings.model_validate(s) for s in {[s.model_dump(mode="json") for s in sources]!r}]
engine = open_registry("sqlite:///{tmp_path / 'registry.db'}")
{before}
with reader_launcher():
    {after}
    seen = set()
    reports = sync_sources(engine, settings_for(Path("{tmp_path}"), sources, 2), POLICY, sources,
                           progress=lambda *_: seen.update(command_line(pid) for pid in reader_pids(os.getpid())))
assert all(r.ok for r in reports), reports
assert seen and all(b"daemon.sync.reader_process" in line for line in seen), seen
"""
    subprocess.run([sys.executable, "-c", program], check=True, cwd=Path(__file__).resolve().parents[3])
    assert snapshot(open_registry(f"sqlite:///{tmp_path / 'registry.db'}")) == reference(tmp_path, sources)


def test_ctrl_c_stops_the_writer_and_its_readers_at_once_and_the_next_sync_completes(tmp_path: Path) -> None:
    """A terminal sends SIGINT to its foreground process group: the writer's, not the readers'."""
    sources = mailboxes(tmp_path, count=3, messages=1500)
    config, engine = sync_config(tmp_path, sources)
    command = [sys.executable, "-m", "daemon.cli.app", "--config", str(config), "sync"]
    writer = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                              preexec_fn=take_sigint)
    readers = wait_for_progress(writer, engine)
    os.killpg(writer.pid, signal.SIGINT)
    _, stderr = writer.communicate(timeout=30)
    assert writer.returncode == 130
    assert b"Traceback" not in stderr and b"sync interrupted; every batch stored so far is kept" in stderr
    assert gone(readers, seconds=2)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    assert snapshot(engine) == reference(tmp_path, sources)


def take_sigint() -> None:
    """A terminal's foreground job takes SIGINT, but a test run started in the background of a
    shell without job control has it ignored, and a child inherits that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def sync_config(tmp_path: Path, sources: list[MaildirSettings], workers: int = 2) -> tuple[Path, Engine]:
    """A config syncing `sources` with `workers` readers in small batches, and the registry it writes."""
    config = tmp_path / "custody.toml"
    database = tmp_path / "registry.db"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\ndatabase_url = "sqlite:///{database}"\nbatch_size = 20\nsync_workers = {workers}\n'
        'sync_readers_after_seconds = 0\n'
        'policy_file = "policy.yaml"\n'
        + "".join(f'[[sources]]\nname = "{s.name}"\nkind = "maildir"\npath = "{s.path}"\nowner = "{s.owner}"\n'
                  for s in sources)
    )
    (tmp_path / "policy.yaml").write_text("company_domains: [acme.test]\n")
    return config, open_registry(f"sqlite:///{database}")


def wait_for_progress(writer: subprocess.Popen[bytes], engine: Engine) -> list[int]:
    """The writer's readers once it has stored its first messages (and is far from done)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert writer.poll() is None, "the sync finished before it could be killed"
        with engine.connect() as db:
            stored = db.execute(select(func.count()).select_from(Message)).scalar_one()
        readers = reader_pids(writer.pid)
        if stored and len(readers) == 2:
            return readers
        time.sleep(0.02)
    raise AssertionError("the sync stored nothing within a minute")
