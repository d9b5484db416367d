"""The sync engine: the one place where a connector, the identity policy and the registry meet."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine, select

from config.policy import Policy
from config.sections import RepConfig
from config.settings import Settings
from connectors.base import Connector, SourceSettings
from connectors.index import open_connector
from daemon.jobs.departure import handle_directory_events
from daemon.leases import insert_if_missing, lease_alive, lease_owner
from daemon.sync.collection import fewer_collections
from daemon.sync.failures import Failure, classify
from daemon.sync.readers import ReaderPool, ReadEvent, ReadTask, SourceReading, identity_for
from policies.identity import Identity
from registry.facts import FactBatch, PersonFact
from registry.ingest import Known, ensure_reps, store_batch
from registry.models import Source, SourceStatus, utcnow
from registry.people import DeclaredRep, declare_reps

log = logging.getLogger("custody.sync")
Progress = Callable[[str, int], None]
LEASE = timedelta(minutes=15)
TAKEN = "another custody process is syncing this source"
JOINED_BATCHES = 8
JOIN_SECONDS = 2.0


@dataclass
class SyncReport:
    """What one sync of a source did; `seconds` runs from its claim to its end. `held` says why it
    did not run at all (another process holds it, or its last failure holds it off). `messages`
    were read, `new_messages` of them were new to the registry (the rest it had already)."""

    source: str
    messages: int = 0
    new_messages: int = 0
    entries: int = 0
    events: int = 0
    skipped: int = 0
    batches: int = 0
    failure: Failure | None = None
    held: str = ""
    retry_at: datetime | None = None
    seconds: float = 0.0
    claimed_at: float = field(default=0.0, repr=False)

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.held

    @property
    def error(self) -> str:
        return self.failure.error if self.failure else self.held


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


@fewer_collections()
def sync_sources(
    engine: Engine,
    settings: Settings,
    policy: Policy,
    sources: list[SourceSettings],
    progress: Progress | None = None,
    held_since: datetime | None = None,
) -> list[SyncReport]:
    """Sync several sources, read by `settings.sync_workers` reader processes while this process
    writes the registry; 0 workers reads them one after another in this process.

    With `held_since` (the service's start), a source whose last failure decided to wait is left
    alone: a transient one until its retry time, one refused for its credentials until its
    settings change or custody starts again. Without it (a person ran `custody sync`), every
    source is tried.

    Readers start only once this process has read for `settings.sync_readers_after_seconds`: a
    sync done sooner (most resyncs) never starts them. Until a reader is up, this process reads
    sources itself and hands the rest of the one in hand to the first reader that is up, from the
    cursor of its last stored batch. Once every reader is up or busy it only writes, so no reader
    waits on a full pipe meanwhile.
    """
    workers = min(settings.sync_workers, len(sources))
    identity = identity_for(settings, policy)
    if workers == 0:
        register_reps(engine, settings, identity)
        writer = _Writer(engine, policy, progress)
        return [_sync_here(writer, settings, identity, source, held_since) for source in sources]
    reports = {source.name: SyncReport(source.name) for source in sources}
    claimed: dict[str, int] = {}
    waiting = list(sources)
    writer = _Writer(engine, policy, progress)
    kinds = {source.kind for source in sources}
    with ReaderPool(settings, policy, workers, settings.sync_readers_after_seconds, kinds) as readers:
        register_reps(engine, settings, identity)
        while (not readers.idle_and_up() and readers.starting
               and (claim := _next_claim(engine, identity, waiting, reports, held_since))):
            report = reports[claim[1].source.name]
            log.debug("reading source %s here while a reader starts", report.source)
            rest = _read_here(writer, settings, identity, claim, report, hand_off=readers.idle_and_up)
            if rest is None:
                _finish(engine, claim[0], report)
            else:
                claimed[report.source] = claim[0]
                readers.assign(rest)
        while waiting or claimed:
            while readers.idle and (claim := _next_claim(engine, identity, waiting, reports, held_since)):
                claimed[claim[1].source.name] = claim[0]
                readers.assign(claim[1])
            if claimed:
                _store_events(writer, readers.next_events(JOINED_BATCHES, writer.due_in()), claimed, reports)
    return [reports[source.name] for source in sources]


def _next_claim(
    engine: Engine, identity: Identity, waiting: list[SourceSettings], reports: dict[str, SyncReport],
    held_since: datetime | None,
) -> tuple[int, ReadTask] | None:
    """The next waiting source this process could claim; sources another process holds or that
    wait after a failure are skipped."""
    while waiting:
        source = waiting.pop(0)
        claim = _claim_task(engine, identity, source, reports[source.name], held_since)
        if claim is not None:
            return claim
    return None


@fewer_collections()
def sync_source(
    engine: Engine,
    settings: Settings,
    policy: Policy,
    source: SourceSettings,
    progress: Progress | None = None,
    connector: Connector[SourceSettings] | None = None,
    held_since: datetime | None = None,
) -> SyncReport:
    """Sync one source batch by batch in this process; a failure is stored on the source and leaves others alone."""
    identity = identity_for(settings, policy)
    register_reps(engine, settings, identity)
    return _sync_here(_Writer(engine, policy, progress), settings, identity, source, held_since, connector)


def _sync_here(
    writer: _Writer,
    settings: Settings,
    identity: Identity,
    source: SourceSettings,
    held_since: datetime | None,
    connector: Connector[SourceSettings] | None = None,
) -> SyncReport:
    """Claim, read and store one source in this process. One writer and one identity serve every
    source of a sync: the reps and addresses the first mailboxes taught them recur in the others."""
    report = SyncReport(source.name)
    claim = _claim_task(writer.engine, identity, source, report, held_since)
    if claim is None:
        return report
    _read_here(writer, settings, identity, claim, report, connector)
    _finish(writer.engine, claim[0], report)
    return report


def _read_here(
    writer: _Writer,
    settings: Settings,
    identity: Identity,
    claim: tuple[int, ReadTask],
    report: SyncReport,
    connector: Connector[SourceSettings] | None = None,
    hand_off: Callable[[], bool] = lambda: False,
) -> ReadTask | None:
    """Read a claimed source in this process, storing each batch. When `hand_off()` says so after a
    batch, read nothing new, store what the connector had already read ahead, and return the task
    that continues from there; else None (done or failed)."""
    source_id, task = claim
    try:
        connector = connector or open_connector(task.source, settings.batch_size)
        reading = SourceReading(connector, identity, task)
        cursor = task.cursor
        with closing(reading.events()) as events:
            for event in events:
                writer.apply(source_id, event, report)
                cursor = event.cursor
                if not reading.finishing and hand_off():
                    reading.finish()
        writer.flush(source_id, report)
        if reading.cut:
            return ReadTask(task.source, cursor, task.owner)
    except Exception as error:  # one source's failure, whatever it is, never stops the others
        writer.fail(source_id, classify(error, task.source.name), report)
    return None


def _store_events(
    writer: _Writer, events: list[ReadEvent], claimed: dict[str, int], reports: dict[str, SyncReport]
) -> None:
    """Apply readers' events, each source's in its order, then store the batches that waited long enough."""
    for event in events:
        _store_event(writer, event, claimed, reports)
    for name, source_id in claimed.items():
        if writer.due(source_id):
            _unless_failed(writer, source_id, reports[name], partial(writer.flush, source_id, reports[name]))


def _unless_failed(writer: _Writer, source_id: int, report: SyncReport, store: Callable[[], None]) -> None:
    """Store what a reader sent unless an earlier batch of its source failed to store: the cursor then
    stays where the registry last took it, and the rest is passed over until the source's last
    event ends the claim. A failure to store fails that source alone."""
    if report.failure is not None:
        return
    try:
        store()
    except Exception as error:  # one source's failure, whatever it is, never stops the others
        writer.apply(source_id, ReadEvent("failed", report.source, failure=classify(error, report.source)), report)


def _store_event(writer: _Writer, event: ReadEvent, claimed: dict[str, int], reports: dict[str, SyncReport]) -> None:
    """Apply a reader's event; a source's last one stores what waited of it and ends its claim."""
    source_id, report = claimed[event.source], reports[event.source]
    if event.kind == "batch":
        _unless_failed(writer, source_id, report, lambda: writer.apply(source_id, event, report))
        return
    _unless_failed(writer, source_id, report, lambda: writer.flush(source_id, report))
    writer.apply(source_id, event, report)
    _finish(writer.engine, source_id, report)
    del claimed[event.source]


def _claim_task(
    engine: Engine, identity: Identity, source: SourceSettings, report: SyncReport, held_since: datetime | None
) -> tuple[int, ReadTask] | None:
    owner = _address(identity, source.owner) if source.owner else ""
    source_id, cursor, held = _claim(engine, source, owner, held_since)
    if source_id is None:
        report.held = held
        return None
    report.claimed_at = time.monotonic()
    return source_id, ReadTask(source, cursor, owner)


@dataclass
class _Waiting:
    """A source's batches read but not stored yet, and when the first of them came."""

    events: list[ReadEvent] = field(default_factory=list)
    since: float = 0.0

    def due_at(self) -> float:
        return self.since if len(self.events) >= JOINED_BATCHES else self.since + JOIN_SECONDS


@dataclass
class _Writer:
    """Stores what a sync reads. It remembers the rep and contact point ids of the batches it
    committed: one batch of mail can name thousands of colleagues, and most customers recur.

    Consecutive batches of a source are stored together, in one transaction with the cursor of
    the last, once JOINED_BATCHES of them wait or the first has waited JOIN_SECONDS: a transaction
    rewrites every index page its rows land on, so on Enron's mail eight batches stored at once
    cost a third less CPU than eight stored one by one. A crash meanwhile loses nothing: the
    cursor stored is still the one before them, so they are read again."""

    engine: Engine
    policy: Policy
    progress: Progress | None
    known: Known = field(default_factory=Known)
    waiting: dict[int, _Waiting] = field(default_factory=dict)

    def apply(self, source_id: int, event: ReadEvent, report: SyncReport) -> None:
        """Keep a batch to store with the next ones, storing them when due, or note why the source
        failed. A batch with directory events is stored at once, after what waited, as departures
        are acted on in the order they were read."""
        if event.kind == "failed":
            report.failure = report.failure or event.failure
            log.warning("source %s failed: %s", report.source, report.error)
            return
        if event.facts is None:
            return
        if event.directory:
            self.flush(source_id, report)
            for line in handle_directory_events(self.engine, self.policy, event.directory):
                log.info("directory: %s", line)
            self.store(source_id, [event], report)
            return
        waiting = self.waiting.setdefault(source_id, _Waiting(since=time.monotonic()))
        waiting.events.append(event)
        if self.due(source_id):
            self.flush(source_id, report)

    def fail(self, source_id: int, failure: Failure, report: SyncReport) -> None:
        """Note a source's failure, storing first what was read before it, so the next sync resumes after that."""
        try:
            self.flush(source_id, report)
        except Exception as error:  # the source has failed already; this is said, not raised
            log.warning("source %s: what was read before it failed was not stored: %s", report.source, error)
        self.apply(source_id, ReadEvent("failed", report.source, failure=failure), report)

    def due(self, source_id: int) -> bool:
        waiting = self.waiting.get(source_id)
        return waiting is not None and waiting.due_at() <= time.monotonic()

    def due_in(self) -> float | None:
        """Seconds until some source's waiting batches are due; None while none wait."""
        earliest = min((waiting.due_at() for waiting in self.waiting.values()), default=None)
        return None if earliest is None else max(0.0, earliest - time.monotonic())

    def flush(self, source_id: int, report: SyncReport) -> None:
        """Store what waits of a source. It is taken out first, so a failed store leaves nothing waiting."""
        waiting = self.waiting.pop(source_id, None)
        if waiting is not None:
            self.store(source_id, waiting.events, report)

    def store(self, source_id: int, batches: list[ReadEvent], report: SyncReport) -> None:
        """Consecutive batches of one source, none with directory events, in one transaction with
        the cursor of the last."""
        stored = [(event, event.facts) for event in batches if event.facts is not None]
        if not stored:
            return
        report.new_messages += store_batch(self.engine, source_id, _joined([facts for _, facts in stored]),
                                           stored[-1][0].cursor or {}, utcnow() + LEASE, self.known)
        for event, facts in stored:
            report.batches += 1
            report.messages += len(facts.messages)
            report.entries += len(facts.sightings)
            report.events += len(event.directory)
            report.skipped += len(facts.skipped)
            if self.progress:
                self.progress(report.source, event.items)


def _joined(facts: list[FactBatch]) -> FactBatch:
    if len(facts) == 1:
        return facts[0]
    return FactBatch([m for f in facts for m in f.messages], [s for f in facts for s in f.sightings],
                     [s for f in facts for s in f.skipped], [p for f in facts for p in f.people])


def _address(identity: Identity, email: str) -> str:
    return identity.normalise_email(email) or email.strip().lower()


def _claim(
    engine: Engine, source: SourceSettings, owner: str, held_since: datetime | None
) -> tuple[int | None, dict[str, Any] | None, str]:
    """Create or update the Source row and take its lease by compare-and-swap; else why not.

    A lease held by a process that died on this host (SIGKILL, power cut) is taken over at once.
    """
    table = Source.__table__
    now = utcnow()
    settings = source.summary()
    with engine.begin() as db:
        owner_id = ensure_reps(db, [PersonFact(owner)])[owner] if owner else None
        row = db.execute(select(table).where(table.c.name == source.name)).first()
        if row is None:
            insert_if_missing(db, table, name=source.name, kind=source.kind, owner_rep_id=owner_id,
                              channel=source.channel, settings=settings, status=SourceStatus.NEW, last_error="",
                              lease_owner="")
            row = db.execute(select(table).where(table.c.name == source.name)).one()
        elif held := _held(row, settings, now, held_since):
            return None, None, held
        observed = row.lease_owner
        if observed and observed != lease_owner() and lease_alive(observed) and row.lease_until > now:
            return None, None, TAKEN
        claimed = db.execute(
            table.update().where(table.c.name == source.name, table.c.lease_owner == observed)
            .values(lease_owner=lease_owner(), lease_until=now + LEASE, last_attempt=now, kind=source.kind,
                    owner_rep_id=owner_id, channel=source.channel, settings=settings)
        ).rowcount
        if not claimed:
            return None, None, TAKEN
        found = db.execute(select(table.c.id, table.c.cursor).where(table.c.name == source.name)).one()
        return found.id, found.cursor, ""


def _held(row: Any, settings: dict[str, Any], now: datetime, held_since: datetime | None) -> str:
    """Why the last failure's decision keeps this source waiting, or "" when it may run."""
    if held_since is None:
        return ""
    if row.status == SourceStatus.RETRYING and row.retry_at is not None and row.retry_at > now:
        return f"waiting until {row.retry_at:%Y-%m-%d %H:%M:%S} UTC to retry after: {row.last_error}"
    if (row.status == SourceStatus.AUTH_FAILED and row.settings == settings
            and row.last_attempt is not None and row.last_attempt >= held_since):
        return f"stopped until its settings change or custody restarts: {row.last_error}"
    return ""


def _finish(engine: Engine, source_id: int, report: SyncReport) -> None:
    """Release the lease and store the sync's decision: ok, or its failure class with a retry time."""
    report.seconds = time.monotonic() - report.claimed_at
    table = Source.__table__
    now = utcnow()
    values: dict[str, Any] = {"lease_owner": "", "lease_until": None}
    with engine.begin() as db:
        if report.failure is None:
            values.update(status=SourceStatus.OK, last_success=now, last_error="", retry_at=None, failures=0)
        else:
            failures = db.execute(select(table.c.failures).where(table.c.id == source_id)).scalar_one() + 1
            report.retry_at = report.failure.retry_at(now, failures)
            values.update(status=report.failure.status, last_error=report.failure.error[:2000],
                          retry_at=report.retry_at, failures=failures)
        db.execute(table.update().where(table.c.id == source_id).values(**values))
