"""Log lines: one JSON object each, written wherever stderr points at the time."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from daemon.logs import configure_logging


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, restored afterwards: configuring logging replaces its handlers."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_lines_go_to_stderr_as_it_is_when_logged(root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch) -> None:
    """A live progress bar swaps sys.stderr after logging is set up, to print lines above itself."""
    configure_logging("INFO")
    swapped = io.StringIO()
    monkeypatch.setattr("sys.stderr", swapped)
    logging.getLogger("custody.sync").warning("source %s failed: %s", "alice", "login refused")
    entry = json.loads(swapped.getvalue())
    assert (entry["level"], entry["logger"], entry["message"]) == ("WARNING", "custody.sync",
                                                                   "source alice failed: login refused")
