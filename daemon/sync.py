"""The sync engine: the one place where a connector, the identity policy and the registry meet."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select, update

from config.policy import Policy
from config.settings import ConfigError, Settings, SourceConfig
from connectors.base import Connector, ConnectorError
from connectors.csv_contacts import CsvContactsConnector
from connectors.imap import ImapConnector
from connectors.maildir import MaildirConnector
from connectors.mbox import MboxConnector
from connectors.vcard import VcardConnector
from daemon.leases import lease_alive, lease_owner
from policies.identity import Identity, KnownRep
from registry.facts import PersonFact
from registry.ingest import ensure_reps, store_batch
from registry.models import Rep, RepAddress, Source, utcnow

log = logging.getLogger("custody.sync")
LEASE = timedelta(minutes=15)


@dataclass
class SyncReport:
    source: str
    messages: int = 0
    entries: int = 0
    skipped: int = 0
    batches: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def build_connector(source: SourceConfig, settings: Settings) -> Connector:
    """The connector for a source's kind; the only place that maps config to protocol code."""
    size = settings.batch_size
    if source.kind == "maildir":
        return MaildirConnector(source.path, source.channel, size, source.folders, source.exclude_folders)  # type: ignore[arg-type]
    if source.kind == "mbox":
        return MboxConnector(source.path, source.channel, size)  # type: ignore[arg-type]
    if source.kind == "vcard":
        return VcardConnector(source.path, source.channel)  # type: ignore[arg-type]
    if source.kind == "csv":
        return CsvContactsConnector(source.path, source.channel, size, source.options)  # type: ignore[arg-type]
    if source.kind == "imap":
        return ImapConnector(source, batch_size=size)
    raise ConfigError(f"sources.{source.name}.kind: {source.kind} connector is not available in this build")


def identity_for(settings: Settings, policy: Policy) -> Identity:
    reps = [KnownRep(r.email, r.name, tuple(r.personal_addresses)) for r in settings.reps]
    return Identity(policy, reps, settings.default_region)


def register_reps(engine: Engine, settings: Settings, identity: Identity) -> None:
    """Configured reps override what discovery guessed: name, team, manager, personal addresses."""
    with engine.begin() as db:
        ids = ensure_reps(db, [PersonFact(_address(identity, r.email), r.name) for r in settings.reps])
        for rep in settings.reps:
            rep_id = ids[_address(identity, rep.email)]
            manager = ensure_reps(db, [PersonFact(_address(identity, rep.manager))]) if rep.manager else {}
            db.execute(update(Rep.__table__).where(Rep.__table__.c.id == rep_id).values(
                name=rep.name, team=rep.team, locale=rep.locale, discovered=False, updated_at=utcnow(),
                manager_id=next(iter(manager.values()), None),
            ))
            for personal in rep.personal_addresses:
                address = _address(identity, personal)
                known = db.execute(select(RepAddress.rep_id).where(RepAddress.email == address)).first()
                if known is None:
                    db.execute(RepAddress.__table__.insert().values(rep_id=rep_id, email=address, kind="personal"))


def sync_source(
    engine: Engine,
    settings: Settings,
    policy: Policy,
    source: SourceConfig,
    progress: Callable[[int], None] | None = None,
    connector: Connector | None = None,
) -> SyncReport:
    """Sync one source batch by batch; a failure marks the source failing and leaves others alone."""
    identity = identity_for(settings, policy)
    register_reps(engine, settings, identity)
    owner = _address(identity, source.owner) if source.owner else ""
    source_id, cursor = _claim(engine, source, owner)
    report = SyncReport(source.name)
    if source_id is None:
        report.error = "another custody process is syncing this source"
        return report
    try:
        for batch in (connector or build_connector(source, settings)).sync(cursor):
            facts = identity.interpret(batch, owner)
            store_batch(engine, source_id, facts, batch.cursor, lease_until=utcnow() + LEASE)
            report.batches += 1
            report.messages += len(facts.messages)
            report.entries += len(facts.sightings)
            report.skipped += len(facts.skipped)
            if progress:
                progress(len(batch.records) + len(batch.skipped))
    except (ConnectorError, OSError, ConfigError) as error:
        report.error = str(error) or type(error).__name__
        log.warning("source %s failed: %s", source.name, report.error)
    _finish(engine, source_id, report)
    return report


def _address(identity: Identity, email: str) -> str:
    return identity.normalise_email(email) or email.strip().lower()


def _claim(engine: Engine, source: SourceConfig, owner: str) -> tuple[int | None, dict[str, Any] | None]:
    """Create or update the Source row and take its lease by compare-and-swap.

    A lease held by a process that died on this host (SIGKILL, power cut) is taken over at once.
    """
    table = Source.__table__
    now = utcnow()
    with engine.begin() as db:
        owner_id = ensure_reps(db, [PersonFact(owner)])[owner] if owner else None
        settings = {"path": str(source.path) if source.path else "", "host": source.host, "username": source.username}
        row = db.execute(select(table.c.lease_owner, table.c.lease_until).where(table.c.name == source.name)).first()
        if row is None:
            db.execute(table.insert().values(name=source.name, kind=source.kind, owner_rep_id=owner_id,
                                             channel=source.channel, settings=settings, status="new",
                                             last_error="", lease_owner=""))
        observed = row.lease_owner if row else ""
        if observed and observed != lease_owner() and lease_alive(observed) and row.lease_until > now:
            return None, None
        claimed = db.execute(
            table.update().where(table.c.name == source.name, table.c.lease_owner == observed)
            .values(lease_owner=lease_owner(), lease_until=now + LEASE, last_attempt=now, kind=source.kind,
                    owner_rep_id=owner_id, channel=source.channel, settings=settings)
        ).rowcount
        if not claimed:
            return None, None
        found = db.execute(select(table.c.id, table.c.cursor).where(table.c.name == source.name)).one()
        return found.id, found.cursor


def _finish(engine: Engine, source_id: int, report: SyncReport) -> None:
    table = Source.__table__
    values: dict[str, Any] = {"lease_owner": "", "lease_until": None}
    if report.ok:
        values.update(status="ok", last_success=utcnow(), last_error="")
    else:
        values.update(status="failing", last_error=report.error[:2000])
    with engine.begin() as db:
        db.execute(table.update().where(table.c.id == source_id).values(**values))
