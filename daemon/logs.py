"""Logging set-up shared by the commands and the reader processes they start.

A service writes JSON lines (journald, Docker and log shippers index the fields); a person at a
terminal reads text. Log lines name sources, counts and errors, never secrets or message contents.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone
from typing import Literal

LOG_FORMAT_ENV = "CUSTODY_LOG_FORMAT"
LogFormat = Literal["json", "text"]
QUIET_LIBRARIES = ("alembic", "apscheduler")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, its time in ISO 8601 UTC with the zone, so lines from hosts in
    different zones sort and compare as they are."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": utc_timestamp(record.created), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class TextLogFormatter(logging.Formatter):
    """Local time, level and logger before the message: for a person watching a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%Y-%m-%d %H:%M:%S")


def utc_timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds")


class CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to `sys.stderr` as it is at each record, so a live progress bar that redirects it
    prints log lines above itself instead of being cut by them."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):  # type: ignore[no-untyped-def, override]
        return sys.stderr


def chosen_format(requested: str | None = None) -> LogFormat:
    """`requested`, else the one in the environment, else text on a terminal and JSON elsewhere."""
    choice = requested or os.environ.get(LOG_FORMAT_ENV, "")
    if choice in ("json", "text"):
        return choice  # type: ignore[return-value]
    return "text" if sys.stderr.isatty() else "json"


def configure_logging(level: str, log_format: str | None = None) -> None:
    """Log at `level` in the chosen format. The choice is left in the environment, which the
    reader processes a command starts inherit, so their lines (copied to its stderr) look alike.
    The scheduler's and migrations' routine lines show only at DEBUG."""
    fmt = chosen_format(log_format)
    os.environ[LOG_FORMAT_ENV] = fmt
    handler = CurrentStderrHandler()
    handler.setFormatter(JsonLogFormatter() if fmt == "json" else TextLogFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for library in QUIET_LIBRARIES:
        logging.getLogger(library).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
