"""A Google Workspace domain read through the real google-api-python-client and google-auth, against
the fake of tests/servers/google.py, which answers as Google's documentation says."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from config.policy import Policy
from config.sections import RepConfig
from config.settings import Settings
from connectors.errors import AuthError, TransientError
from connectors.google.connector import GoogleConnector
from connectors.google.settings import GoogleSettings
from connectors.records import DirectoryEvent
from daemon.sync.engine import sync_source
from registry.models import Handover, Rep, Sighting
from tests.connectors.contract import BATCH_SIZE, UNREADABLE_MAIL, ConnectorContract
from tests.servers.dovecot import free_port
from tests.servers.google import FakeGoogle, Workspace
from tests.support.google import google_source, key_file
from tests.support.mail import message
from tests.support.registry import snapshot

POLICY = Policy(company_domains=["acme.test"], notifications={"company_name": "Acme", "shared_mailbox": "customers@acme.test"})
ANN, BOB, ADMIN = "ann@acme.test", "bob@acme.test", "it@acme.test"
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def mail_between(workspace: Workspace, rep: str, customers: list[str], count: int, start: int = 0) -> None:
    """`count` messages to customers in the rep's Sent mail, one reply each in the Inbox; one of each in Spam."""
    for n in range(start, start + count):
        customer, when = customers[n % len(customers)], START + timedelta(hours=n)
        workspace.add_message(rep, message(rep, customer, subject=f"Offer {n}", date=when,
                                           message_id=f"<offer{n}.{rep}@acme.test>"), labels=("SENT",))
        workspace.add_message(rep, message(customer, rep, subject=f"Re: Offer {n}", date=when,
                                           message_id=f"<re{n}.{rep}@shop.test>"), labels=("INBOX",))
    workspace.add_message(rep, message("spam@junk.test", rep, subject="You won"), labels=("SPAM",))


def settings_for(tmp_path: Path, source: GoogleSettings) -> Settings:
    return Settings(data_dir=tmp_path, reps=[RepConfig(email=ANN)], sources=[source], sync_workers=0)


def sync(engine: Engine, tmp_path: Path, source: GoogleSettings) -> Any:
    report = sync_source(engine, settings_for(tmp_path, source), POLICY, source)
    assert report.failure is None, report.error
    return report


def workspace_with_admin(workspace: Workspace) -> Workspace:
    workspace.add_user(ADMIN, "It Admin", admin=True)
    return workspace


def handovers(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as db:
        return db.execute(select(Rep.email, Handover.status).join(Rep, Rep.id == Handover.rep_id)).all()


def records(connector: GoogleConnector, cursor: dict[str, Any] | None = None) -> tuple[list[Any], dict[str, Any]]:
    batches = list(connector.sync(cursor))
    return [r for b in batches for r in b.records], batches[-1].cursor


def test_a_domain_syncs_its_directory_mail_and_contacts_into_the_registry(
        engine: Engine, google_workspace: Workspace, tmp_path: Path) -> None:
    workspace_with_admin(google_workspace)
    google_workspace.add_user("boss@acme.test", "Bea Boss")
    google_workspace.add_user(ANN, "Ann Archer", department="Key accounts", manager="boss@acme.test",
                              aliases=("a.archer@acme.test",))
    mail_between(google_workspace, ANN, ["cy@shop.test", "di@buyer.test"], 3)
    google_workspace.add_contact(ANN, {"names": [{"displayName": "Eve"}], "emailAddresses": [{"value": "eve@client.test"}],
                                       "organizations": [{"name": "Client"}]})

    report = sync(engine, tmp_path, google_source(google_workspace, tmp_path, admin=ADMIN, mailboxes=[ANN]))

    assert (report.messages, report.entries, report.events) == (6, 1, 1)
    with engine.connect() as db:
        assert db.execute(select(Rep.team, Rep.name).where(Rep.email == ANN)).one() == ("Key accounts", "Ann Archer")
    assert {row[2] for row in snapshot(engine)["interactions"]} == {"cy@shop.test", "di@buyer.test"}


def test_a_rep_suspended_between_two_polls_is_planned_to_leave_once(
        engine: Engine, google_workspace: Workspace, tmp_path: Path) -> None:
    workspace_with_admin(google_workspace)
    google_workspace.add_user(ANN, "Ann Archer")
    google_workspace.add_user(BOB, "Bob Baker")
    mail_between(google_workspace, ANN, ["cy@shop.test"], 2)
    source = google_source(google_workspace, tmp_path, admin=ADMIN, mailboxes=[ANN, BOB])
    sync(engine, tmp_path, source)

    google_workspace.update_user(ANN, suspended=True)
    sync(engine, tmp_path, source)
    sync(engine, tmp_path, source)

    assert handovers(engine) == [(ANN, "planned")]


def test_an_archived_or_deleted_user_is_a_deactivation_and_unsuspending_a_reactivation(
        google_workspace: Workspace, tmp_path: Path) -> None:
    workspace_with_admin(google_workspace)
    for address in (ANN, BOB):
        google_workspace.add_user(address)
    connector = GoogleConnector(google_source(google_workspace, tmp_path, admin=ADMIN, mailboxes=[ANN, BOB],
                                              read=["directory"]))
    _, cursor = records(connector)

    google_workspace.update_user(ANN, archived=True)
    google_workspace.delete_user(BOB)
    gone, cursor = records(connector, cursor)
    google_workspace.update_user(ANN, archived=False)
    back, _ = records(connector, cursor)

    assert sorted((e.kind, e.email) for e in gone) == [("deactivated", ANN), ("deactivated", BOB)]
    assert [(e.kind, e.email) for e in back if isinstance(e, DirectoryEvent)] == [("reactivated", ANN)]


def test_history_read_after_a_full_sync_brings_only_new_mail_and_nothing_new_costs_one_history_call(
        google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user(ANN)
    mail_between(google_workspace, ANN, ["cy@shop.test"], 3)
    connector = GoogleConnector(google_source(google_workspace, tmp_path, mailboxes=[ANN], read=["mail"]), batch_size=2)
    first, cursor = records(connector)
    mail_between(google_workspace, ANN, ["cy@shop.test"], 1, start=3)
    added, cursor = records(connector, cursor)
    before = len(google_workspace.requests[ANN])

    nothing, _ = records(connector, cursor)

    assert len(first) == 6 and sorted(r.subject for r in added) == ["Offer 3", "Re: Offer 3"]
    assert nothing == [] and [p for _, p in google_workspace.requests[ANN][before:]] == ["/gmail/v1/users/me/history"]


def test_a_history_gmail_no_longer_keeps_rereads_the_mailbox_without_duplicates(
        engine: Engine, google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user(ANN)
    mail_between(google_workspace, ANN, ["cy@shop.test"], 3)
    source = google_source(google_workspace, tmp_path, mailboxes=[ANN], read=["mail"])
    sync(engine, tmp_path, source)
    first = snapshot(engine)

    google_workspace.expire_history(ANN)
    mail_between(google_workspace, ANN, ["cy@shop.test"], 1, start=3)
    sync(engine, tmp_path, source)

    again = snapshot(engine)
    assert len(again["messages"]) == len(first["messages"]) + 2  # type: ignore[arg-type]
    assert len(again["interactions"]) == len(first["interactions"]) + 2  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "reason"), [(429, "rateLimitExceeded"), (403, "userRateLimitExceeded")])
def test_a_rate_limit_storm_is_waited_out(google_workspace: Workspace, tmp_path: Path, status: int, reason: str) -> None:
    google_workspace.add_user(ANN)
    mail_between(google_workspace, ANN, ["cy@shop.test"], 2)
    google_workspace.throttle(ANN, 3, status=status, reason=reason)

    found, _ = records(GoogleConnector(google_source(google_workspace, tmp_path, mailboxes=[ANN], read=["mail"])))

    assert len(found) == 4


def test_a_throttle_longer_than_the_source_waits_is_a_transient_failure(google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user(ANN)
    google_workspace.units_per_minute = 1
    source = google_source(google_workspace, tmp_path, mailboxes=[ANN], read=["mail"], max_retry_after_seconds=5)

    with pytest.raises(TransientError) as failed:
        list(GoogleConnector(source).sync(None))

    assert failed.value.retry_after is not None and failed.value.retry_after > 5


def test_a_mailbox_that_fails_is_a_skip_while_the_others_are_read(google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user(ANN)
    mail_between(google_workspace, ANN, ["cy@shop.test"], 1)
    source = google_source(google_workspace, tmp_path, mailboxes=[ANN, "gone@acme.test"], read=["mail"])

    batches = list(GoogleConnector(source).sync(None))

    assert len([r for b in batches for r in b.records]) == 2
    assert [s.ref for b in batches for s in b.skipped] == ["gone@acme.test/mail"]


def test_missing_delegation_is_an_auth_error_naming_the_scopes(google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user(ANN)
    google_workspace.undelegate("https://www.googleapis.com/auth/gmail.metadata")

    with pytest.raises(AuthError, match="gmail.metadata") as failed:
        list(GoogleConnector(google_source(google_workspace, tmp_path, mailboxes=[ANN], read=["mail"])).sync(None))

    assert "delegate" in str(failed.value)


def test_contacts_added_and_deleted_come_and_go_and_an_expired_sync_token_relists_them(
        engine: Engine, google_workspace: Workspace, tmp_path: Path) -> None:
    google_workspace.add_user(ANN)
    eve = google_workspace.add_contact(ANN, {"names": [{"displayName": "Eve"}], "emailAddresses": [{"value": "eve@client.test"}]})
    google_workspace.add_contact(ANN, {"names": [{"displayName": "Fay"}], "emailAddresses": [{"value": "fay@client.test"}]})
    source = google_source(google_workspace, tmp_path, mailboxes=[ANN], read=["contacts"])
    sync(engine, tmp_path, source)
    assert _sightings(engine) == 2

    google_workspace.delete_contact(ANN, eve)
    sync(engine, tmp_path, source)
    assert _sightings(engine) == 1

    google_workspace.expire_sync_tokens(ANN)
    google_workspace.add_contact(ANN, {"names": [{"displayName": "Gus"}], "emailAddresses": [{"value": "gus@client.test"}]})
    sync(engine, tmp_path, source)
    assert _sightings(engine) == 2


def test_mailboxes_come_from_a_group_or_from_the_domains_active_users(google_workspace: Workspace, tmp_path: Path) -> None:
    workspace_with_admin(google_workspace)
    for address in (ANN, BOB, "cy@acme.test"):
        google_workspace.add_user(address)
    google_workspace.update_user("cy@acme.test", suspended=True)
    google_workspace.add_group("sales@acme.test", [ANN, "cy@acme.test"])

    by_group = GoogleConnector(google_source(google_workspace, tmp_path, admin=ADMIN, group="sales@acme.test", read=["mail"]))
    by_domain = GoogleConnector(google_source(google_workspace, tmp_path, admin=ADMIN, domains=["acme.test"], read=["mail"]))

    assert by_group._mailboxes() == [ANN]
    assert sorted(by_domain._mailboxes()) == [ANN, BOB, ADMIN]


def _sightings(engine: Engine) -> int:
    with engine.connect() as db:
        return db.execute(select(func.count()).select_from(Sighting)).scalar_one()


class TestGoogleContract(ConnectorContract):
    """Each source is a new Workspace on the session's fake Google, with one mailbox."""

    connector = GoogleConnector

    @pytest.fixture(autouse=True)
    def _place(self, google_server: FakeGoogle, tmp_path: Path) -> None:
        self.server = google_server
        self.folder = tmp_path
        self.numbers = itertools.count()

    def make(self, items: int, unreadable: int = 0) -> GoogleConnector:
        workspace = self.server.create_workspace()
        workspace.add_user("rep@acme.test")
        for n in range(items):
            workspace.add_message("rep@acme.test", message(f"c{n % 2}@client.test", "rep@acme.test", subject=f"Hello {n}",
                                                           date=START + timedelta(minutes=n), message_id=f"<m{n}@client.test>"))
        for _ in range(unreadable):
            workspace.add_message("rep@acme.test", UNREADABLE_MAIL)
        return GoogleConnector(google_source(workspace, self.folder, f"gws{next(self.numbers)}", mailboxes=["rep@acme.test"],
                                             read=["mail"]), batch_size=BATCH_SIZE)

    def unreachable(self) -> GoogleConnector:
        workspace = self.server.create_workspace()
        source = google_source(workspace, self.folder, mailboxes=["rep@acme.test"], read=["mail"])
        return GoogleConnector(source.model_copy(update={"token_uri": f"http://127.0.0.1:{free_port()}/token"}))

    def wrong_credentials(self) -> GoogleConnector:
        workspace = self.server.create_workspace()
        workspace.add_user("rep@acme.test")
        source = google_source(workspace, self.folder, mailboxes=["rep@acme.test"], read=["mail"])
        stranger = key_file(self.server.create_workspace(), self.folder)
        return GoogleConnector(source.model_copy(update={"key_file": stranger}))
