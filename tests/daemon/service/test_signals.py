"""`custody run` and signals, with real processes: SIGTERM or SIGINT stops at the sync's next commit and
exits 0, a second one exits at once, nothing is lost either way; SIGHUP reloads and never kills."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from registry.models import Message
from tests.support.mail import START, conversation, write_maildir
from tests.support.service import Service, free_port, maildir_source, metric, wait_until
from tests.support.service import service_config as shared_service_config

MESSAGES = 3000


def write_many(root: Path, count: int) -> Path:
    """A Maildir of `count` small messages, written directly (the email package would take longer
    than the sync)."""
    for part in ("tmp", "new", "cur"):
        (root / part).mkdir(parents=True, exist_ok=True)
    for n in range(count):
        sender, recipient = ("ann@acme.test", "bo@shop.test") if n % 2 else ("bo@shop.test", "ann@acme.test")
        (root / "cur" / f"{n:06d}.test:2,S").write_text(
            f"From: {sender}\r\nTo: {recipient}\r\nSubject: Order {n}\r\n"
            f"Date: {format_datetime(START + timedelta(minutes=n))}\r\nMessage-ID: <big{n}@mail.test>\r\n\r\nHello\r\n")
    return root


def service_config(folder: Path, port: int, sources: str, service: str = "", batch_size: int = 1) -> Path:
    return shared_service_config(folder, port, sources, extra=f"batch_size = {batch_size}\n", service=service)


def stored_messages(folder: Path) -> int:
    engine = create_engine(f"sqlite:///{folder / 'data' / 'custody.db'}")
    with engine.connect() as db:
        count = db.execute(select(func.count()).select_from(Message)).scalar_one()
    engine.dispose()
    return count


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word: an IMAP sync against it hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def hanging_source(port: int) -> str:
    return (f'[[sources]]\nname = "stuck"\nkind = "imap"\nhost = "127.0.0.1"\nport = {port}\nsecurity = "plain"\n'
            'username = "ann"\npassword = "secret"\ntimeout_seconds = 600\n')


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_a_long_sync_ends_at_its_next_commit_and_the_next_start_resumes(
    tmp_path: Path, signum: int,
) -> None:
    port = free_port()
    config = service_config(tmp_path, port, maildir_source("big", write_many(tmp_path / "big", MESSAGES)))
    service = Service(config, port)
    try:
        service.wait_for_metric('custody_sync_batches_total{source="big"}', 20)
    finally:
        assert service.stop(signum, timeout=30) == 0
    stored = stored_messages(tmp_path)
    assert 20 <= stored < MESSAGES, "the stop did not land during the sync"
    assert any(line["message"].startswith(f"stopping on {signal.Signals(signum).name}") for line in service.messages())
    assert not [line for line in service.messages() if line["level"] in ("WARNING", "ERROR")]

    config.write_text(config.read_text().replace("batch_size = 1\n", "batch_size = 500\n"))
    again = Service(config, port)
    try:
        exposition = again.wait_for_metric('custody_sync_duration_seconds_count{source="big"}')
    finally:
        assert again.stop() == 0
    assert metric(exposition, 'custody_sync_records_total{kind="message",source="big"}') == MESSAGES - stored
    assert stored_messages(tmp_path) == MESSAGES


def test_a_second_signal_exits_at_once_while_a_job_hangs(tmp_path: Path, silent_server: int) -> None:
    port = free_port()
    config = service_config(tmp_path, port, hanging_source(silent_server), "stop_timeout_seconds = 600\n")
    service = Service(config, port)
    try:
        wait_until(lambda: "sync:stuck" in service.probe("/healthz")[1].get("running_jobs", []), "the sync hangs")
        service.send(signal.SIGTERM)
        service.wait_for_log("stopping on SIGTERM")
        assert service.probe("/healthz")[0] == 503
        service.send(signal.SIGTERM)
        assert service.process.wait(timeout=30) == 0
    finally:
        service.kill()
    service.stop()
    messages = [line["message"] for line in service.messages()]
    assert "second signal: stopping now" in messages
    assert any(m.startswith("stopped with jobs unfinished (") and "sync:stuck" in m for m in messages)


def test_a_job_that_does_not_end_is_abandoned_after_the_stop_timeout(tmp_path: Path, silent_server: int) -> None:
    port = free_port()
    config = service_config(tmp_path, port, hanging_source(silent_server), "stop_timeout_seconds = 1\n")
    service = Service(config, port)
    try:
        wait_until(lambda: "sync:stuck" in service.probe("/healthz")[1].get("running_jobs", []), "the sync hangs")
    finally:
        assert service.stop(timeout=30) == 0
    assert any(m["message"].startswith("stopped with jobs unfinished (") and "sync:stuck" in m["message"]
               for m in service.messages())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_two_quick_signals_never_crash_the_service(tmp_path: Path, signum: int) -> None:
    port = free_port()
    archive = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 10)})
    service = Service(service_config(tmp_path, port, maildir_source("ann", archive)), port)
    try:
        service.wait_for_metric('custody_sync_duration_seconds_count{source="ann"}')
        service.send(signum)
        service.send(signum)
        assert service.process.wait(timeout=30) == 0
    finally:
        service.kill()
    service.stop()
    assert not [line for line in service.lines if "Traceback" in line or "SchedulerNotRunningError" in line]


def test_sighup_reloads_config_and_policy_and_a_bad_file_changes_nothing(tmp_path: Path) -> None:
    port = free_port()
    ann = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 6)})
    cy = write_maildir(tmp_path / "cy", {"INBOX": conversation("cy@acme.test", ["di@shop.test"], 4, prefix="c")})
    config = service_config(tmp_path, port, maildir_source("ann", ann))
    service = Service(config, port)
    try:
        service.wait_for_metric('custody_sync_duration_seconds_count{source="ann"}')
        good = config.read_text()
        config.write_text('batch_sise = 3\n' + good)
        service.send(signal.SIGHUP)
        service.wait_for_log("reload refused, still running with the previous config: batch_sise: unknown key")
        assert service.probe("/healthz")[0] == 200

        config.write_text(good.replace(f"listen_port = {port}", f"listen_port = {free_port()}")
                          + maildir_source("cy", cy))
        service.send(signal.SIGHUP)
        service.wait_for_log("reloaded config and policy; a restart is needed to change service.listen_port")
        exposition = service.wait_for_metric('custody_sync_records_total{kind="message",source="cy"}', 4)
        assert metric(exposition, 'custody_sync_duration_seconds_count{source="ann"}') == 1
        assert service.probe("/healthz")[1]["jobs"] == 4
    finally:
        assert service.stop() == 0
