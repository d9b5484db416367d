"""`custody sync` of a Microsoft 365 tenant or a Google Workspace domain, killed with SIGKILL at
random moments while it reads a rep's departure and their mail: once a run completes, the registry
holds what one uninterrupted run leaves, the departure planned once and each directory event acted
on once."""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from registry.models import AuditEvent, Handover, Message, Rep
from registry.store import open_registry
from tests.connectors.google import test_google_source as google
from tests.connectors.graph import test_graph_source as graph
from tests.servers.google import FakeGoogle
from tests.servers.graph import FakeGraph
from tests.support.forks import CustodyForks
from tests.support.google import key_file
from tests.support.graph import secret_file

KILLS = 5
ANN, BOB, ADMIN = "ann@acme.test", "bob@acme.test", "it@acme.test"
CUSTOMERS = [f"buyer{n}@c{n}.test" for n in range(20)]
Company = Callable[[Path], str]
READABLE = {"graph": 240, "google": 120}  # Gmail refuses to act as a suspended user: only Bob's mail is read


def microsoft_365(server: FakeGraph) -> Company:
    """A tenant where Ann's account is disabled; the source's TOML for it."""
    def company(folder: Path) -> str:
        tenant = server.create_tenant()
        tenant.latency_seconds = 0.01
        tenant.add_user(ANN, "Ann Archer", enabled=False)
        tenant.add_user(BOB, "Bob Baker")
        for rep in (ANN, BOB):
            graph.mail_between(tenant, rep, CUSTOMERS, 60)
        return (f'kind = "graph"\ntenant_id = "{tenant.tenant_id}"\nclient_id = "{tenant.client_id}"\n'
                f'client_secret_file = "{secret_file(tenant, folder)}"\nauthority_host = "{server.base_url}"\n'
                f'graph_url = "{tenant.graph_url}"\nca_file = "{tenant.ca_file}"\n')
    return company


def google_workspace(server: FakeGoogle) -> Company:
    """A Workspace where Ann is suspended; the source's TOML for it."""
    def company(folder: Path) -> str:
        workspace = server.create_workspace()
        workspace.latency_seconds = 0.005
        workspace.add_user(ADMIN, "It Admin", admin=True)
        workspace.add_user(ANN, "Ann Archer", suspended=True)
        workspace.add_user(BOB, "Bob Baker")
        for rep in (ANN, BOB):
            google.mail_between(workspace, rep, CUSTOMERS, 60)
        return (f'kind = "google"\nkey_file = "{key_file(workspace, folder)}"\ntoken_uri = "{server.base_url}/token"\n'
                f'api_endpoint = "{server.base_url}"\nadmin = "{ADMIN}"\ncalls_per_batch = 10\n')
    return company


@pytest.fixture(params=list(READABLE))
def company(request: pytest.FixtureRequest) -> Company:
    if request.param == "graph":
        return microsoft_365(request.getfixturevalue("graph_server"))
    return google_workspace(request.getfixturevalue("google_server"))


def write_config(folder: Path, company: Company) -> Path:
    folder.mkdir()
    (folder / "policy.yaml").write_text(graph.POLICY.model_dump_json(), encoding="utf-8")
    config = folder / "custody.toml"
    config.write_text(
        f'data_dir = "{folder / "data"}"\npolicy_file = "policy.yaml"\nlog_level = "WARNING"\nsync_workers = 0\n'
        f'[[reps]]\nemail = "{ANN}"\nname = "Ann Archer"\n[[reps]]\nemail = "{BOB}"\nname = "Bob Baker"\n'
        f'[[sources]]\nname = "cloud"\nmailboxes = ["{ANN}", "{BOB}"]\npage_size = 10\n{company(folder)}', encoding="utf-8")
    return config


def state(engine: Engine) -> dict[str, Any]:
    with engine.connect() as db:
        return {
            "handovers": sorted(db.execute(select(Rep.email, Handover.status).join(Rep, Rep.id == Handover.rep_id)).all()),
            "directory_events": db.execute(select(func.count()).select_from(AuditEvent)
                                           .where(AuditEvent.entity == "directory_event")).scalar_one(),
            "messages": db.execute(select(func.count()).select_from(Message)).scalar_one(),
        }


def progress(found: dict[str, Any]) -> int:
    """How far a sync got: directory events acted on, then messages stored."""
    return int(found["directory_events"]) + int(found["messages"])


def killed_once_past(process: Any, engine: Engine, point: int) -> bool:
    """SIGKILL the sync once the registry shows `point` of its work done; False when it ended first."""
    while process.poll() is None:
        if reached(engine, point):
            os.kill(process.pid, signal.SIGKILL)
            process.communicate()
            return True
        time.sleep(0.002)
    process.communicate()
    return False


def reached(engine: Engine, point: int) -> bool:
    try:
        return progress(state(engine)) >= point
    except OperationalError:  # the sync holds the database for a moment
        return False


def sync(forks: CustodyForks, config: Path) -> Any:
    return forks.start("--config", str(config), "sync")


def test_a_sync_killed_anywhere_plans_the_departure_once_and_stores_every_message_once(
        company: Company, tmp_path: Path, custody_forks: CustodyForks, request: pytest.FixtureRequest) -> None:
    uninterrupted = sync(custody_forks, write_config(tmp_path / "reference", company))
    assert uninterrupted.wait() == 0, uninterrupted.communicate()[1].decode()
    expected = state(open_registry(f"sqlite:///{tmp_path / 'reference' / 'data' / 'custody.db'}"))
    config = write_config(tmp_path / "crashed", company)
    crashed = open_registry(f"sqlite:///{tmp_path / 'crashed' / 'data' / 'custody.db'}")
    rng = random.Random(5)
    killed = 0
    for _ in range(KILLS):
        process = sync(custody_forks, config)
        if killed_once_past(process, crashed, rng.randint(1, progress(expected) - 1)):
            killed += 1
    finished = sync(custody_forks, config)
    assert finished.wait() == 0, finished.communicate()[1].decode()

    assert killed > 0
    assert state(crashed) == expected
    assert expected["handovers"] == [(ANN, "planned")] and expected["directory_events"] == 2
    assert expected["messages"] == READABLE[request.node.callspec.params["company"]]
