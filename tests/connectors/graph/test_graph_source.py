"""A Microsoft 365 tenant read through Graph: the real msal and requests code against the fake
tenant of tests/servers/graph.py, which answers as Graph's documentation says."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from config.policy import Policy
from config.sections import RepConfig
from config.settings import Settings
from connectors.errors import AuthError, TransientError
from connectors.graph.connector import GraphConnector
from connectors.graph.settings import GraphSettings
from connectors.records import DirectoryEvent
from daemon.sync.engine import sync_source
from registry.models import Handover, Rep, Sighting
from tests.connectors.contract import BATCH_SIZE, ConnectorContract
from tests.servers.dovecot import free_port
from tests.servers.graph import FakeGraph, Tenant
from tests.support.graph import graph_source, message
from tests.support.registry import snapshot

POLICY = Policy(company_domains=["acme.test"], notifications={"company_name": "Acme", "shared_mailbox": "customers@acme.test"})
ANN, BOB = "ann@acme.test", "bob@acme.test"


def mail_between(tenant: Tenant, rep: str, customers: list[str], count: int, start: int = 0) -> None:
    """`count` messages to customers in the rep's Sent Items, one reply each in the Inbox."""
    for n in range(start, start + count):
        customer = customers[n % len(customers)]
        tenant.add_message(rep, "sentitems", message(rep, [customer], f"Offer {n}", f"<offer{n}.{rep}@acme.test>"))
        tenant.add_message(rep, "inbox", message(customer, [rep], f"Re: Offer {n}", f"<re{n}.{rep}@shop.test>"))


def settings_for(tmp_path: Path, source: GraphSettings) -> Settings:
    return Settings(data_dir=tmp_path, reps=[RepConfig(email=ANN)], sources=[source], sync_workers=0)


def sync(engine: Engine, tmp_path: Path, source: GraphSettings) -> Any:
    report = sync_source(engine, settings_for(tmp_path, source), POLICY, source)
    assert report.failure is None, report.error
    return report


def handovers(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as db:
        return db.execute(select(Rep.email, Handover.status).join(Rep, Rep.id == Handover.rep_id)).all()


def test_a_tenant_syncs_its_directory_mail_and_contacts_into_the_registry(
        engine: Engine, graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user("boss@acme.test", "Bea Boss")
    graph_tenant.add_user(ANN, "Ann Archer", department="Key accounts", manager="boss@acme.test",
                          proxy_addresses=[f"SMTP:{ANN}", "smtp:a.archer@acme.test"])
    mail_between(graph_tenant, ANN, ["cy@shop.test", "di@buyer.test"], 3)
    graph_tenant.add_contact(ANN, {"displayName": "Eve", "emailAddresses": [{"address": "eve@client.test"}],
                                   "companyName": "Client"})

    report = sync(engine, tmp_path, graph_source(graph_tenant, tmp_path, mailboxes=[ANN]))

    assert (report.messages, report.entries, report.events) == (6, 1, 1)
    with engine.connect() as db:
        ann = db.execute(select(Rep.team, Rep.name).where(Rep.email == ANN)).one()
    assert ann == ("Key accounts", "Ann Archer")
    assert {row[2] for row in snapshot(engine)["interactions"]} == {"cy@shop.test", "di@buyer.test"}


def test_a_rep_disabled_between_two_polls_is_planned_to_leave_once(
        engine: Engine, graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(ANN, "Ann Archer")
    graph_tenant.add_user(BOB, "Bob Baker")
    mail_between(graph_tenant, ANN, ["cy@shop.test"], 2)
    source = graph_source(graph_tenant, tmp_path, mailboxes=[ANN, BOB])
    sync(engine, tmp_path, source)

    graph_tenant.update_user(ANN, enabled=False)
    sync(engine, tmp_path, source)
    sync(engine, tmp_path, source)

    assert handovers(engine) == [(ANN, "planned")]


def test_a_deactivation_read_again_after_a_crash_is_acted_on_once(
        engine: Engine, graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(ANN, "Ann Archer")
    source = graph_source(graph_tenant, tmp_path, mailboxes=[ANN], read=["directory"])
    sync(engine, tmp_path, source)
    with engine.connect() as db:
        before_disable = db.execute(select(func.count()).select_from(Handover)).scalar()
    stored = _cursor(engine, "m365")
    graph_tenant.update_user(ANN, enabled=False)

    events = [r for b in GraphConnector(source).sync(stored) for r in b.records if isinstance(r, DirectoryEvent)]
    sync(engine, tmp_path, source)

    assert [e.kind for e in events] == ["deactivated"] and before_disable == 0
    replayed = [r for b in GraphConnector(source).sync(stored) for r in b.records if isinstance(r, DirectoryEvent)]
    assert [e.event_id for e in replayed] == [e.event_id for e in events]
    assert handovers(engine) == [(ANN, "planned")]


def test_an_expired_delta_token_reads_the_folder_again_without_duplicates(
        engine: Engine, graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(ANN)
    mail_between(graph_tenant, ANN, ["cy@shop.test"], 3)
    source = graph_source(graph_tenant, tmp_path, mailboxes=[ANN])
    sync(engine, tmp_path, source)
    first = snapshot(engine)

    graph_tenant.expire_delta_tokens(ANN)
    mail_between(graph_tenant, ANN, ["cy@shop.test"], 1, start=3)
    sync(engine, tmp_path, source)

    again = snapshot(engine)
    assert len(again["messages"]) == len(first["messages"]) + 2
    assert len(again["interactions"]) == len(set(again["interactions"])) == len(first["interactions"]) + 2


def test_a_storm_of_429s_is_waited_out_as_retry_after_says(graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(ANN)
    mail_between(graph_tenant, ANN, ["cy@shop.test"], 2)
    graph_tenant.throttle(ANN, 3, retry_after_seconds=1)

    batches = list(GraphConnector(graph_source(graph_tenant, tmp_path, mailboxes=[ANN], read=["mail"])).sync(None))

    assert len([r for b in batches for r in b.records]) == 4 and not [s for b in batches for s in b.skipped]


def test_a_throttle_longer_than_the_source_waits_is_a_transient_failure(graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(ANN)
    graph_tenant.throttle(ANN, 50, retry_after_seconds=600)
    source = graph_source(graph_tenant, tmp_path, mailboxes=[ANN], read=["mail"], max_retry_after_seconds=30)

    with pytest.raises(TransientError) as failed:
        list(GraphConnector(source).sync(None))

    assert failed.value.retry_after == 600


def test_a_mailbox_that_fails_is_a_skip_while_the_others_are_read(graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(ANN)
    mail_between(graph_tenant, ANN, ["cy@shop.test"], 1)
    source = graph_source(graph_tenant, tmp_path, mailboxes=[ANN, "gone@acme.test"], read=["mail"])

    batches = list(GraphConnector(source).sync(None))

    assert len([r for b in batches for r in b.records]) == 2
    assert sorted(s.ref for b in batches for s in b.skipped) == ["gone@acme.test/inbox", "gone@acme.test/sentitems"]


def test_a_missing_permission_is_an_auth_error_naming_it(graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(ANN)
    graph_tenant.revoke("Mail.ReadBasic.All", "Mail.Read")

    with pytest.raises(AuthError, match="Mail.ReadBasic.All"):
        list(GraphConnector(graph_source(graph_tenant, tmp_path, mailboxes=[ANN], read=["mail"])).sync(None))


def test_nothing_new_costs_one_request_per_folder(graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(ANN)
    mail_between(graph_tenant, ANN, ["cy@shop.test"], 4)
    source = graph_source(graph_tenant, tmp_path, mailboxes=[ANN], read=["mail", "contacts"])
    cursor = list(GraphConnector(source, batch_size=3).sync(None))[-1].cursor
    before = len(graph_tenant.requests_to(ANN))

    again = list(GraphConnector(source, batch_size=3).sync(cursor))

    assert [r for b in again for r in b.records] == []
    assert len(graph_tenant.requests_to(ANN)) - before == 3


def test_contacts_added_and_deleted_come_and_go_from_the_registry(
        engine: Engine, graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(ANN)
    eve = graph_tenant.add_contact(ANN, {"displayName": "Eve", "emailAddresses": [{"address": "eve@client.test"}]})
    graph_tenant.add_contact(ANN, {"displayName": "Fay", "emailAddresses": [{"address": "fay@client.test"}]})
    source = graph_source(graph_tenant, tmp_path, mailboxes=[ANN], read=["contacts"])
    sync(engine, tmp_path, source)
    assert _sightings(engine) == 2

    graph_tenant.delete_contact(ANN, eve)
    sync(engine, tmp_path, source)

    assert _sightings(engine) == 1


def test_mailboxes_come_from_a_group_or_from_the_domains_enabled_users(graph_tenant: Tenant, tmp_path: Path) -> None:
    for address in (ANN, BOB, "cy@acme.test", "ext@other.test"):
        graph_tenant.add_user(address)
        mail_between(graph_tenant, address, ["zo@shop.test"], 1)
    graph_tenant.update_user("cy@acme.test", enabled=False)
    group = graph_tenant.add_group("Sales", [ANN, "ext@other.test"])

    by_group = GraphConnector(graph_source(graph_tenant, tmp_path, group=group, read=["mail"]))
    by_domain = GraphConnector(graph_source(graph_tenant, tmp_path, domains=["acme.test"], read=["mail"]))

    assert by_group._mailboxes() == [ANN, "ext@other.test"]
    assert sorted(by_domain._mailboxes()) == [ANN, BOB]


def test_the_token_cache_is_encrypted_at_rest_and_spares_the_token_endpoint(
        graph_tenant: Tenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.fernet import Fernet

    monkeypatch.setenv("CUSTODY_TOKEN_KEY", Fernet.generate_key().decode())
    graph_tenant.add_user(ANN)
    cache = tmp_path / "tokens.bin"
    source = graph_source(graph_tenant, tmp_path, mailboxes=[ANN], read=["mail"], token_cache_file=cache,
                          token_cache_key_env="CUSTODY_TOKEN_KEY")

    list(GraphConnector(source).sync(None))
    list(GraphConnector(source).sync(None))

    assert graph_tenant.token_requests == 1
    assert cache.stat().st_mode & 0o077 == 0 and b"access_token" not in cache.read_bytes()
    assert graph_tenant.client_secret.encode() not in cache.read_bytes()


def test_a_certificate_credential_signs_in(graph_tenant: Tenant, tmp_path: Path) -> None:
    graph_tenant.add_user(ANN)
    pem = tmp_path / "app.pem"
    pem.write_text(graph_tenant.private_key_pem + graph_tenant.certificate_pem)
    source = graph_source(graph_tenant, tmp_path, mailboxes=[ANN], read=["mail"])
    with_certificate = source.model_copy(update={"client_secret_file": None, "certificate_file": pem})

    assert "token granted" in GraphConnector(with_certificate).check()


def _cursor(engine: Engine, name: str) -> dict[str, Any]:
    from registry.models import Source

    with engine.connect() as db:
        return db.execute(select(Source.cursor).where(Source.name == name)).scalar_one()


def _sightings(engine: Engine) -> int:
    with engine.connect() as db:
        return db.execute(select(func.count()).select_from(Sighting)).scalar_one()


class TestGraphContract(ConnectorContract):
    """Each source is a new tenant of the session's fake Graph, with one mailbox."""

    connector = GraphConnector

    @pytest.fixture(autouse=True)
    def _place(self, graph_server: FakeGraph, tmp_path: Path) -> None:
        self.server = graph_server
        self.folder = tmp_path
        self.numbers = itertools.count()

    def make(self, items: int, unreadable: int = 0) -> GraphConnector:
        tenant = self.server.create_tenant()
        tenant.add_user("rep@acme.test")
        for n in range(items):
            tenant.add_message("rep@acme.test", "inbox", message(f"c{n % 2}@client.test", ["rep@acme.test"], f"Hello {n}",
                                                                 f"<m{n}@client.test>", f"2026-03-02T09:{n % 60:02d}:00Z"))
        for _ in range(unreadable):
            tenant.add_message("rep@acme.test", "inbox", {"internetMessageId": f"<x{next(self.numbers)}@nowhere.test>",
                                                          "subject": "nobody sent this", "from": None, "sender": None})
        return GraphConnector(graph_source(tenant, self.folder, mailboxes=["rep@acme.test"], read=["mail"]),
                              batch_size=BATCH_SIZE)

    def unreachable(self) -> GraphConnector:
        tenant = self.server.create_tenant()
        source = graph_source(tenant, self.folder, mailboxes=["rep@acme.test"], read=["mail"])
        return GraphConnector(source.model_copy(update={"authority_host": f"https://127.0.0.1:{free_port()}"}))

    def wrong_credentials(self) -> GraphConnector:
        tenant = self.server.create_tenant()
        source = graph_source(tenant, self.folder, mailboxes=["rep@acme.test"], read=["mail"])
        wrong = self.folder / "wrong.secret"
        wrong.write_text("not-the-secret")
        return GraphConnector(source.model_copy(update={"client_secret_file": wrong}))


