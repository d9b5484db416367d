"""A `custody outbox run` SIGKILLed after a mail provider accepted a letter and before custody recorded
it, then run again: what the crash tests of each API transport share."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.forks import CustodyForks
from tests.support.service import wait_until


def outbox_config(folder: Path, registry: str, policy: str, way_out: str) -> Path:
    """A config for `custody outbox run` against `registry`, sending through the TOML table `way_out`."""
    (folder / "policy.yaml").write_text(policy)
    config = folder / "custody.toml"
    config.write_text(f"""\
data_dir = "{folder / 'data'}"
database_url = "{registry}"
policy_file = "policy.yaml"
log_level = "WARNING"

{way_out}""")
    return config


@contextmanager
def registry_stalled(path: Path) -> Iterator[None]:
    """Another writer holds the SQLite registry, so whatever the dispatcher wants to record waits."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        yield
        db.execute("ROLLBACK")
    finally:
        db.close()


def kill_once_accepted(forks: CustodyForks, config: Path, registry: Path, requested: Callable[[], bool],
                       accepted: Callable[[], bool]) -> None:
    """Start `custody outbox run` and SIGKILL it once the provider has `accepted` its first letter. The
    registry is stalled from the moment the send request arrives (`requested`; the provider must answer
    slowly enough), so the kill lands before custody recorded the send, whatever the timing."""
    killed = forks.start("--config", str(config), "outbox", "run")
    wait_until(requested, "the first send request reached the provider")
    with registry_stalled(registry):
        wait_until(accepted, "the provider accepted the first letter")
        os.kill(killed.pid, signal.SIGKILL)
        killed.communicate()


def run_to_the_end(forks: CustodyForks, config: Path) -> dict[str, Any]:
    """`custody outbox run` until it ends by itself; its JSON report."""
    process = forks.start("--config", str(config), "outbox", "run")
    out, err = process.communicate()
    assert process.returncode == 0, err.decode()
    report: dict[str, Any] = json.loads(out)
    return report
