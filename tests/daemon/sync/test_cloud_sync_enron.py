"""A real Enron mailbox served as Microsoft 365 mail and as Gmail: read through either API it gives
the registry the same messages and the same interactions as its Inbox and Sent folders read from
the maildir."""

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
from tests.servers.enron_folders import INBOX_FOLDERS, SENT_FOLDERS
from tests.servers.gmail_corpus import enron_gmail_messages
from tests.servers.google import FakeGoogle
from tests.servers.graph import FakeGraph
from tests.servers.graph_corpus import enron_mailbox_messages
from tests.support.google import google_source
from tests.support.graph import graph_source
from tests.support.registry import snapshot

pytestmark = pytest.mark.corpus
USER, REP = "arnold-j", "john.arnold@enron.com"
POLICY = Policy(company_domains=["enron.com"])


def through_graph(server: FakeGraph, enron: Path, folder: Path) -> SourceSettings:
    tenant = server.create_tenant()
    tenant.add_user(REP, "John Arnold")
    for mail_folder, message in enron_mailbox_messages(enron / USER):
        tenant.add_message(REP, mail_folder, message)
    return graph_source(tenant, folder, mailboxes=[REP], read=["mail"])


def through_gmail(server: FakeGoogle, enron: Path, folder: Path) -> SourceSettings:
    workspace = server.create_workspace("enron.com")
    workspace.add_user(REP, "John Arnold")
    for raw, labels in enron_gmail_messages(enron / USER):
        workspace.add_message(REP, raw, labels)
    return google_source(workspace, folder, mailboxes=[REP], read=["mail"])


def synced(engine: Engine, tmp_path: Path, source: SourceSettings) -> dict[str, object]:
    settings = Settings(data_dir=tmp_path, reps=[RepConfig(email=REP)], sources=[source], sync_workers=0)
    report = sync_source(engine, settings, POLICY, source)
    assert report.ok, report.error
    facts = snapshot(engine)
    return {"messages": facts["messages"], "interactions": facts["interactions"]}


@pytest.mark.parametrize("api", ["graph", "gmail"])
def test_an_enron_mailbox_read_through_a_cloud_api_is_the_same_registry_as_its_maildir(
        enron: Path, tmp_path: Path, api: str, request: pytest.FixtureRequest) -> None:
    cloud = (through_graph(request.getfixturevalue("graph_server"), enron, tmp_path) if api == "graph"
             else through_gmail(request.getfixturevalue("google_server"), enron, tmp_path))
    folders = tmp_path / "folders"
    folders.mkdir()
    for folder in (enron / USER).iterdir():
        if folder.name.lower() in INBOX_FOLDERS | SENT_FOLDERS:
            shutil.copytree(folder, folders / folder.name)
    from_maildir = MaildirSettings(name=USER, path=folders, owner=REP)

    read_through_api = synced(open_registry(f"sqlite:///{tmp_path / 'cloud.db'}"), tmp_path, cloud)
    maildir = synced(open_registry(f"sqlite:///{tmp_path / 'maildir.db'}"), tmp_path, from_maildir)

    assert len(read_through_api["messages"]) > 1000  # type: ignore[arg-type]
    assert read_through_api == maildir
