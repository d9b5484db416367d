"""The sync engine: the one place where a connector, the identity policy and the registry meet."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select

from config.policy import Policy
from config.sections import RepConfig, SourceConfig
from config.settings import Settings
from connectors.base import Connector
from daemon.leases import lease_alive, lease_owner
from daemon.sync.readers import ReaderPool, ReadEvent, ReadTask, build_connector, failure, identity_for, read_source
from policies.identity import Identity
from registry.facts import PersonFact
from registry.ingest import ensure_reps, store_batch
from registry.models import Source, utcnow
from registry.people import DeclaredRep, declare_reps

log = logging.getLogger("custody.sync")
Progress = Callable[[str, int], None]
LEASE = timedelta(minutes=15)


@dataclass
class SyncReport:
    """What one sync of a source did; `seconds` runs from its claim to its end."""

    source: str
    messages: int = 0
    entries: int = 0
    skipped: int = 0
    batches: int = 0
    error: str = ""
    seconds: float = 0.0
    claimed_at: float = field(default=0.0, repr=False)

    @property
    def ok(self) -> bool:
        return not self.error


def register_reps(engine: Engine, settings: Settings, identity: Identity) -> None:
    """Configured reps override what mail showed: role, name, team, manager and every address."""
    with engine.begin() as db:
        declare_reps(db, [declared_rep(identity, rep) for rep in settings.reps])


def declared_rep(identity: Identity, rep: RepConfig) -> DeclaredRep:
    def plain(addresses: list[str]) -> tuple[str, ...]:
        return tuple(a for a in (identity.plain_address(x) for x in addresses) if a)

    return DeclaredRep(_address(identity, rep.email), rep.name, rep.team,
                       _address(identity, rep.manager) if rep.manager else "", rep.locale,
                       plain(rep.aliases), plain(rep.personal_addresses))


def sync_sources(
    engine: Engine,
    settings: Settings,
    policy: Policy,
    sources: list[SourceConfig],
    progress: Progress | None = None,
) -> list[SyncReport]:
    """Sync several sources, read by `settings.sync_workers` reader processes while this process
    writes the registry; 0 workers reads them one after another in this process.

    While a reader is still starting, this process reads sources itself and hands the rest of the
    one in hand to the first reader that is up, from the cursor of its last stored batch. Once
    every reader is up or busy it only writes, so no reader waits on a full pipe meanwhile.
    """
    workers = min(settings.sync_workers, len(sources))
    if workers == 0:
        return [sync_source(engine, settings, policy, source, progress) for source in sources]
    identity = identity_for(settings, policy)
    reports = {source.name: SyncReport(source.name) for source in sources}
    claimed: dict[str, int] = {}
    waiting = list(sources)
    writer = _Writer(engine, progress)
    with ReaderPool(settings, policy, workers) as readers:
        register_reps(engine, settings, identity)
        while (not readers.idle_and_up() and readers.starting
               and (claim := _next_claim(engine, identity, waiting, reports))):
            report = reports[claim[1].source.name]
            log.debug("reading source %s here while a reader starts", report.source)
            rest = _read_here(writer, settings, identity, claim, report, hand_off=readers.idle_and_up)
            if rest is None:
                _finish(engine, claim[0], report)
            else:
                claimed[report.source] = claim[0]
                readers.assign(rest)
        while waiting or claimed:
            while readers.idle and (claim := _next_claim(engine, identity, waiting, reports)):
                claimed[claim[1].source.name] = claim[0]
                readers.assign(claim[1])
            if claimed:
                _store_event(writer, readers.next_event(), claimed, reports)
    return [reports[source.name] for source in sources]


def _next_claim(
    engine: Engine, identity: Identity, waiting: list[SourceConfig], reports: dict[str, SyncReport]
) -> tuple[int, ReadTask] | None:
    """The next waiting source this process could claim; sources another process holds are skipped."""
    while waiting:
        source = waiting.pop(0)
        claim = _claim_task(engine, identity, source, reports[source.name])
        if claim is not None:
            return claim
    return None


def sync_source(
    engine: Engine,
    settings: Settings,
    policy: Policy,
    source: SourceConfig,
    progress: Progress | None = None,
    connector: Connector | None = None,
) -> SyncReport:
    """Sync one source batch by batch in this process; a failure marks the source failing and leaves others alone."""
    identity = identity_for(settings, policy)
    register_reps(engine, settings, identity)
    report = SyncReport(source.name)
    claim = _claim_task(engine, identity, source, report)
    if claim is None:
        return report
    _read_here(_Writer(engine, progress), settings, identity, claim, report, connector)
    _finish(engine, claim[0], report)
    return report


def _read_here(
    writer: _Writer,
    settings: Settings,
    identity: Identity,
    claim: tuple[int, ReadTask],
    report: SyncReport,
    connector: Connector | None = None,
    hand_off: Callable[[], bool] = lambda: False,
) -> ReadTask | None:
    """Read a claimed source in this process, storing each batch; when `hand_off()` says so after a
    batch, stop and return the task that continues from there, else None (done or failed)."""
    source_id, task = claim
    try:
        connector = connector or build_connector(task.source, settings.batch_size)
        with closing(read_source(connector, identity, task)) as events:
            for event in events:
                writer.apply(source_id, event, report)
                if hand_off():
                    return ReadTask(task.source, event.cursor, task.owner)
    except Exception as error:  # one source's failure, whatever it is, never stops the others
        writer.apply(source_id, ReadEvent("failed", task.source.name, error=failure(error, task.source.name)), report)
    return None


def _store_event(writer: _Writer, event: ReadEvent, claimed: dict[str, int], reports: dict[str, SyncReport]) -> None:
    """Apply a reader's event; a source's last one ends its claim."""
    source_id = claimed[event.source]
    writer.apply(source_id, event, reports[event.source])
    if event.kind != "batch":
        _finish(writer.engine, source_id, reports[event.source])
        del claimed[event.source]


def _claim_task(
    engine: Engine, identity: Identity, source: SourceConfig, report: SyncReport
) -> tuple[int, ReadTask] | None:
    owner = _address(identity, source.owner) if source.owner else ""
    source_id, cursor = _claim(engine, source, owner)
    if source_id is None:
        report.error = "another custody process is syncing this source"
        return None
    report.claimed_at = time.monotonic()
    return source_id, ReadTask(source, cursor, owner)


@dataclass
class _Writer:
    """Stores what a sync reads. It remembers the rep ids of the batches it committed: an address
    once a rep's stays that rep's, and one batch of mail can name thousands of colleagues."""

    engine: Engine
    progress: Progress | None
    rep_ids: dict[str, int] = field(default_factory=dict)

    def apply(self, source_id: int, event: ReadEvent, report: SyncReport) -> None:
        """Store a batch with its cursor (and the renewed lease) in one transaction, or note why the source failed."""
        if event.kind == "failed":
            report.error = event.error
            log.warning("source %s failed: %s", report.source, report.error)
            return
        if event.facts is None:
            return
        store_batch(self.engine, source_id, event.facts, event.cursor or {}, utcnow() + LEASE, self.rep_ids)
        report.batches += 1
        report.messages += len(event.facts.messages)
        report.entries += len(event.facts.sightings)
        report.skipped += len(event.facts.skipped)
        if self.progress:
            self.progress(report.source, event.items)


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
    report.seconds = time.monotonic() - report.claimed_at
    table = Source.__table__
    values: dict[str, Any] = {"lease_owner": "", "lease_until": None}
    if report.ok:
        values.update(status="ok", last_success=utcnow(), last_error="")
    else:
        values.update(status="failing", last_error=report.error[:2000])
    with engine.begin() as db:
        db.execute(table.update().where(table.c.id == source_id).values(**values))
