"""A real Enron mailbox served as Microsoft 365 mail: read through Graph it gives the registry the
same messages and the same interactions as its Inbox and Sent folders read from the maildir."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine

from config.policy import Policy
from config.sections import RepConfig
from config.settings import Settings
from connectors.base import SourceSettings
from connectors.maildir import MaildirSettings
from daemon.sync.engine import sync_source
from registry.store import open_registry
from tests.servers.graph import Tenant
from tests.servers.graph_corpus import INBOX_FOLDERS, SENT_FOLDERS, enron_mailbox_messages
from tests.support.graph import graph_source
from tests.support.registry import snapshot

pytestmark = pytest.mark.corpus
USER, REP = "arnold-j", "john.arnold@enron.com"
POLICY = Policy(company_domains=["enron.com"])


def synced(engine: Engine, tmp_path: Path, source: SourceSettings) -> dict[str, object]:
    settings = Settings(data_dir=tmp_path, reps=[RepConfig(email=REP)], sources=[source], sync_workers=0)
    report = sync_source(engine, settings, POLICY, source)
    assert report.ok, report.error
    facts = snapshot(engine)
    return {"messages": facts["messages"], "interactions": facts["interactions"]}


def test_an_enron_mailbox_read_through_graph_is_the_same_registry_as_its_maildir(
        enron: Path, graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(REP, "John Arnold")
    for folder, message in enron_mailbox_messages(enron / USER):
        graph_tenant.add_message(REP, folder, message)
    folders = tmp_path / "folders"
    folders.mkdir()
    for folder in (enron / USER).iterdir():
        if folder.name.lower() in INBOX_FOLDERS | SENT_FOLDERS:
            shutil.copytree(folder, folders / folder.name)
    through_graph = graph_source(graph_tenant, tmp_path, mailboxes=[REP], read=["mail"])
    from_maildir = MaildirSettings(name=USER, path=folders, owner=REP)

    graph = synced(open_registry(f"sqlite:///{tmp_path / 'graph.db'}"), tmp_path, through_graph)
    maildir = synced(open_registry(f"sqlite:///{tmp_path / 'maildir.db'}"), tmp_path, from_maildir)

    assert len(graph["messages"]) > 1000  # type: ignore[arg-type]
    assert graph == maildir
