"""`custody sync` of a Microsoft 365 tenant, killed with SIGKILL at random moments while it reads a
rep's disabling and their mail: once a run completes, the registry holds what one uninterrupted
run leaves, the departure planned once and its directory event acted on once."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from registry.models import AuditEvent, Handover, Message, Rep
from registry.store import open_registry
from tests.connectors.graph.test_graph_source import POLICY, mail_between
from tests.servers.graph import FakeGraph, Tenant
from tests.support.forks import CustodyForks
from tests.support.graph import secret_file

KILLS = 5
ANN, BOB = "ann@acme.test", "bob@acme.test"


def tenant_where_ann_left(server: FakeGraph) -> Tenant:
    tenant = server.create_tenant()
    tenant.latency_seconds = 0.01
    tenant.add_user(ANN, "Ann Archer", enabled=False)
    tenant.add_user(BOB, "Bob Baker")
    for rep in (ANN, BOB):
        mail_between(tenant, rep, [f"buyer{n}@c{n}.test" for n in range(20)], 60)
    return tenant


def write_config(folder: Path, tenant: Tenant) -> Path:
    folder.mkdir()
    (folder / "policy.yaml").write_text(POLICY.model_dump_json(), encoding="utf-8")
    config = folder / "custody.toml"
    config.write_text(
        f'data_dir = "{folder / "data"}"\npolicy_file = "policy.yaml"\nlog_level = "WARNING"\nsync_workers = 0\n'
        f'[[reps]]\nemail = "{ANN}"\nname = "Ann Archer"\n[[reps]]\nemail = "{BOB}"\nname = "Bob Baker"\n'
        f'[[sources]]\nname = "m365"\nkind = "graph"\ntenant_id = "{tenant.tenant_id}"\nclient_id = "{tenant.client_id}"\n'
        f'client_secret_file = "{secret_file(tenant, folder)}"\nauthority_host = "{tenant.server.base_url}"\n'
        f'graph_url = "{tenant.graph_url}"\nca_file = "{tenant.ca_file}"\npage_size = 10\n', encoding="utf-8")
    return config


def state(engine: Engine) -> dict[str, Any]:
    with engine.connect() as db:
        return {
            "handovers": sorted(db.execute(select(Rep.email, Handover.status).join(Rep, Rep.id == Handover.rep_id)).all()),
            "directory_events": db.execute(select(func.count()).select_from(AuditEvent)
                                           .where(AuditEvent.entity == "directory_event")).scalar_one(),
            "messages": db.execute(select(func.count()).select_from(Message)).scalar_one(),
        }


def sync(forks: CustodyForks, config: Path) -> Any:
    return forks.start("--config", str(config), "sync")


def test_a_sync_killed_anywhere_plans_the_departure_once_and_stores_every_message_once(
        graph_server: FakeGraph, tmp_path: Path, custody_forks: CustodyForks) -> None:
    reference_config = write_config(tmp_path / "reference", tenant_where_ann_left(graph_server))
    uninterrupted = sync(custody_forks, reference_config)
    assert uninterrupted.wait() == 0, uninterrupted.communicate()[1].decode()
    expected = state(open_registry(f"sqlite:///{tmp_path / 'reference' / 'data' / 'custody.db'}"))
    config = write_config(tmp_path / "crashed", tenant_where_ann_left(graph_server))
    rng = random.Random(5)
    killed = 0
    for _ in range(KILLS):
        process = sync(custody_forks, config)
        time.sleep(rng.uniform(0.05, 1.5))
        if process.poll() is not None:
            break
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
        killed += 1
    finished = sync(custody_forks, config)
    assert finished.wait() == 0, finished.communicate()[1].decode()

    crashed = open_registry(f"sqlite:///{tmp_path / 'crashed' / 'data' / 'custody.db'}")
    assert killed > 0
    assert state(crashed) == expected
    assert expected["handovers"] == [(ANN, "planned")] and expected["directory_events"] == 2
    assert expected["messages"] == 240

