"""Round leases: one daemon at a time runs a shared round, and a dead one's round is taken over."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from daemon.leases import claim_round, round_lease
from registry.models import RoundLease, utcnow

HOLDER = """\
import sys
from daemon.leases import claim_round
from registry.store import open_registry
print(claim_round(open_registry(sys.argv[1], sys.argv[2] or None), "coverage"), flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder(registry_target: tuple[str, str | None]) -> Iterator[subprocess.Popen[str]]:
    """Another process on this host that has taken the coverage round and keeps running."""
    url, schema = registry_target
    process = subprocess.Popen([sys.executable, "-c", HOLDER, url, schema or ""], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "True"
    yield process
    process.kill()
    process.wait()


def test_a_round_held_by_a_live_daemon_is_not_run_here_and_is_taken_at_once_when_it_dies(
        engine: Engine, holder: subprocess.Popen[str]) -> None:
    assert claim_round(engine, "coverage") is False
    assert claim_round(engine, "departures") is True
    holder.kill()
    holder.wait()
    assert claim_round(engine, "coverage") is True


def test_the_lease_is_released_when_the_round_ends_and_the_end_is_recorded(engine: Engine) -> None:
    with round_lease(engine, "departures") as held:
        assert held
        assert claim_round(engine, "departures") is True  # ours already: a second tick here may run it
    with engine.connect() as db:
        row = db.execute(RoundLease.__table__.select()).one()
    assert (row.name, row.lease_owner, row.lease_until) == ("departures", "", None)
    assert row.last_finished is not None


def test_another_hosts_lease_is_respected_until_it_expires(engine: Engine) -> None:
    """A process on another host cannot be asked whether it lives: its lease's expiry decides."""
    table = RoundLease.__table__
    with engine.begin() as db:
        db.execute(table.insert().values(name="coverage", lease_owner="elsewhere.example:4242",
                                         lease_until=utcnow() + timedelta(minutes=5)))
    assert claim_round(engine, "coverage") is False
    assert claim_round(engine, "coverage", now=utcnow() + timedelta(minutes=6)) is True
