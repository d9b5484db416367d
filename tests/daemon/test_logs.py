"""Log lines: one JSON object each, written wherever stderr points at the time."""

from __future__ import annotations

import io
import json
import logging
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from daemon.logs import LOG_FORMAT_ENV, QUIET_LIBRARIES, configure_logging


@pytest.fixture
def root_logger(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    """The root logger, restored afterwards: configuring logging replaces its handlers, sets the
    libraries' levels and leaves the format in the environment."""
    monkeypatch.delenv(LOG_FORMAT_ENV, raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    libraries = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, library_level in libraries.items():
        logging.getLogger(name).setLevel(library_level)


def test_lines_go_to_stderr_as_it_is_when_logged(root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A live progress bar swaps sys.stderr after logging is set up, to print lines above itself."""
    configure_logging("INFO")
    swapped = io.StringIO()
    monkeypatch.setattr("sys.stderr", swapped)
    logging.getLogger("custody.sync").warning("source %s failed: %s", "alice", "login refused")
    entry = json.loads(swapped.getvalue())
    assert (entry["level"], entry["logger"], entry["message"]) == ("WARNING", "custody.sync",
                                                                   "source alice failed: login refused")


def test_json_lines_carry_iso_8601_utc_times_with_the_zone(root_logger: logging.Logger,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("INFO", "json")
    swapped = io.StringIO()
    monkeypatch.setattr("sys.stderr", swapped)
    logging.getLogger("custody.service").info("custody running")
    moment = datetime.fromisoformat(json.loads(swapped.getvalue())["time"])
    assert moment.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - moment) < timedelta(minutes=1)


def test_the_scheduler_and_migrations_speak_only_at_debug(root_logger: logging.Logger,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    configure_logging("INFO", "json")
    swapped = io.StringIO()
    monkeypatch.setattr("sys.stderr", swapped)
    logging.getLogger("apscheduler.scheduler").info("Adding job tentatively -- it will be properly scheduled")
    logging.getLogger("apscheduler.executors.default").info('Running job "sync ann"')
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    assert swapped.getvalue() == ""
    configure_logging("DEBUG", "json")
    logging.getLogger("apscheduler.scheduler").debug("Looking for jobs to run")
    assert "Looking for jobs to run" in swapped.getvalue()


@pytest.mark.parametrize("terminal, expected", [(True, "text"), (False, "json")])
def test_text_on_a_terminal_json_elsewhere_and_the_option_wins(tmp_path: Path, terminal: bool, expected: str) -> None:
    """Reader processes inherit the choice through the environment, so their lines look alike."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("CUSTODY_")}
    for option, wanted in (([], expected), (["--log-format", "json"], "json"), (["--log-format", "text"], "text")):
        config = tmp_path / wanted / f"{len(option)}.toml"
        config.parent.mkdir(exist_ok=True)
        config.write_text(f'data_dir = "{len(option)}"\n')
        leader, follower = pty.openpty() if terminal else os.pipe()
        process = subprocess.Popen([sys.executable, "-m", "daemon.cli.app", *option, "--config", str(config), "status"],
                                   stdout=subprocess.DEVNULL, stderr=follower, env=env)
        os.close(follower)
        assert process.wait(timeout=60) == 0
        first = read_all(leader).splitlines()[0]
        if wanted == "json":
            assert re.fullmatch(r"registry: created at revision \w+", json.loads(first)["message"])
        else:
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO    custody\.registry: registry: created at "
                                r"revision \w+\r?", first), first


def read_all(fd: int) -> str:
    """Everything written to a pipe or a pty whose writers are gone (a pty's end reads as EIO)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode()
