"""`custody run`: the long-running service that schedules every job.

Several daemons can share one registry: every one ticks every job, and the work is claimed in the
registry through row leases that expire (each source, each notification, and the departure,
outbox and coverage rounds), so nothing runs twice at once and a dead daemon's work is taken over. Each job is
also safe to run twice. Every job runs once soon after start and then on its interval, never beside
itself in this process.

Signals are read by the main thread from a socket CPython writes each signal's number to, not
acted on inside a handler: SIGTERM or SIGINT stops scheduling and lets running jobs end (a sync
at its next commit) for up to `service.stop_timeout_seconds`; a second one exits at once.
Either way nothing is lost, because batches commit together with their cursor and each send is
recorded before and after. SIGHUP reloads the config and the policy.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from config.sections import ConfigError
from daemon.jobs.coverage import coverage_round
from daemon.jobs.departure import departure_round
from daemon.leases import round_lease
from daemon.logs import configure_logging
from daemon.outbox.round import outbox_round
from daemon.runtime import Runtime, first_line
from daemon.service.metrics import (
    BATCHES,
    DEPARTURE_ACTIONS,
    JOB_DURATION,
    JOB_RUNS,
    RegistryCollector,
    record_outbox,
    record_sync,
    serve,
)
from daemon.sync.engine import TAKEN, register_reps, sync_sources
from daemon.sync.readers import identity_for
from registry.models import Source, SourceStatus, as_utc, utcnow
from registry.store import migration_state

log = logging.getLogger("custody.service")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
ELSEWHERE = "elsewhere"  # a job's outcome when another daemon on the registry holds its round
# A source another daemon syncs is looked at again this soon, so a dead daemon's source is taken over
# within it (at once when the dead one ran on this host; elsewhere once its lease runs out).
TAKEOVER_CHECK = timedelta(seconds=30)
# What a reload cannot change in a running process, by the key that sets it.
RESTART_KEYS: dict[str, Callable[[Runtime], object]] = {
    "database_url": lambda rt: (rt.settings.registry_url(), rt.settings.database_schema),
    "service.listen_host": lambda rt: rt.settings.service.listen_host,
    "service.listen_port": lambda rt: rt.settings.service.listen_port,
    "sync_workers": lambda rt: rt.settings.sync_workers,
}


class Stopping(BaseException):
    """Raised right after a batch and its cursor commit when the service stops, ending the sync
    there. Not an Exception, so no handler on the way mistakes it for the source failing."""


class SignalInbox:
    """Signals as numbers read from a socket, so the main thread handles them in ordinary code,
    where taking locks and stopping the scheduler is safe."""

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._writer.setblocking(False)
        signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        for signum in (*STOP_SIGNALS, signal.SIGHUP):
            signal.signal(signum, _note_only)

    def next(self, timeout: float | None) -> int | None:
        """The next signal's number, or None when `timeout` seconds pass without one."""
        self._reader.settimeout(timeout)
        try:
            return self._reader.recv(1)[0]
        except TimeoutError:
            return None

    def close(self) -> None:
        """Stop listening. The handlers stay until the process exits: a signal sent a moment after
        the first must not kill it with the default action halfway through stopping."""
        signal.set_wakeup_fd(-1)
        self._reader.close()
        self._writer.close()


def _note_only(_signum: int, _frame: object) -> None:
    """Replaces the default action (exit); CPython has already written the number to the inbox."""


class Service:
    """The scheduler, its jobs and the probes; `rt` is replaced as a whole by a reload."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.started_at = utcnow()
        self.loaded_at = self.started_at
        self.stopping = threading.Event()
        self._running: list[str] = []
        self._woken_while_running: set[str] = set()
        self._synced_here: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._first_syncs = {source.name for source in rt.settings.sources}
        self.scheduler = BackgroundScheduler(
            timezone=timezone.utc,
            executors={"default": ThreadPoolExecutor(3), "sync": ThreadPoolExecutor(max(1, rt.settings.sync_workers))},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )

    # Scheduling

    def schedule(self) -> None:
        """Declare the configured reps, then add, replace or remove jobs to match the settings.

        Reps first: an HR file read before any sync must find the rep it names. A job that exists
        keeps its next run time, so a reload neither delays work nor starts it all again; a new one
        runs after a jitter."""
        settings, service = self.rt.settings, self.rt.settings.service
        self._declare_reps()
        minutes = {"sync": service.sync_interval_minutes, "departures": service.handover_interval_minutes,
                   "outbox": service.handover_interval_minutes, "coverage": service.coverage_interval_minutes}
        wanted: dict[str, tuple[str, Callable[..., None], tuple[str, ...], str]] = {
            f"sync:{source.name}": ("sync", self._sync_job, (source.name,), f"sync {source.name}")
            for source in settings.sources
        }
        wanted["departures"] = ("departures", self._departures_job, (), "HR files, due handovers, late customers")
        if settings.sends_mail():
            wanted["outbox"] = ("outbox", self._outbox_job, (), "send due notifications, read bounces")
        wanted["coverage"] = ("coverage", self._coverage_job, (), "merges, dormant recycling, owners, snapshot")
        for job_id, (kind, func, args, name) in wanted.items():
            existing = self.scheduler.get_job(job_id)
            first = self._first_run(minutes["coverage"] if job_id == "coverage" and self._first_syncs else 0)
            self.scheduler.add_job(
                func, IntervalTrigger(minutes=minutes[kind], jitter=service.jitter_seconds), args=args, id=job_id,
                name=name, executor="sync" if kind == "sync" else "default", replace_existing=True,
                next_run_time=existing.next_run_time if existing else first,
            )
        for job in self.scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()
        log.info("scheduled: %d source syncs every %g min, departures and outbox every %g min, coverage every "
                 "%g min; first runs within %d s", len(settings.sources), service.sync_interval_minutes,
                 service.handover_interval_minutes, service.coverage_interval_minutes, service.jitter_seconds)
        idle = unscheduled(self.rt)
        if idle:
            log.info("not scheduled: %s", "; ".join(idle))

    def _declare_reps(self) -> None:
        """A registry that does not answer now only delays this: every sync declares the reps too."""
        rt = self.rt
        try:
            register_reps(rt.engine, rt.settings, identity_for(rt.settings, rt.policy))
        except SQLAlchemyError as error:
            log.warning("reps not declared yet, the registry is unreachable: %s", first_line(error))

    def _first_run(self, minutes: float = 0) -> datetime:
        """After `minutes`, spread over the jitter so several sources (and instances) do not all start at once.

        The coverage round waits for the first sync of every source instead (it is woken then): run
        before them, it would classify what the registry held before the mail they bring. Its
        interval is the fallback when a source never finishes."""
        jitter = random.uniform(0, self.rt.settings.service.jitter_seconds)
        return datetime.now(timezone.utc) + timedelta(minutes=minutes, seconds=jitter)

    def wake(self, job_id: str) -> None:
        """Run a job now instead of at its next interval: work another job created is picked up at once.
        A job woken while it runs runs again when it ends, since the work may have come too late for it."""
        if self.stopping.is_set():
            return
        with self._lock:
            if job_id in self._running:
                self._woken_while_running.add(job_id)
                return
        try:
            self.scheduler.modify_job(job_id, next_run_time=datetime.now(timezone.utc))
        except JobLookupError:
            return

    # Jobs

    def _sync_job(self, name: str) -> None:
        self._tracked("sync", f"sync:{name}", lambda: self._sync(name))
        with self._lock:
            waiting = bool(self._first_syncs)
            self._first_syncs.discard(name)
            last = waiting and not self._first_syncs
        if last:
            self.wake("coverage")

    def _departures_job(self) -> None:
        self._tracked("departures", "departures", lambda: self._in_round("departures", self._departures))

    def _outbox_job(self) -> None:
        self._tracked("outbox", "outbox", lambda: self._in_round("outbox", self._outbox))

    def _coverage_job(self) -> None:
        self._tracked("coverage", "coverage", lambda: self._in_round("coverage", self._coverage))

    def _in_round(self, name: str, work: Callable[[], None]) -> str | None:
        """Run a shared round when this daemon holds its lease; ELSEWHERE when another one does."""
        with round_lease(self.rt.engine, name) as held:
            if not held:
                return ELSEWHERE
            work()
        return None

    def _tracked(self, kind: str, job_id: str, work: Callable[[], str | None]) -> None:
        """Run a job, and again at once as long as it was woken while it ran."""
        while self._run_once(kind, job_id, work) and not self.stopping.is_set():
            log.debug("%s woken while it ran: running again", job_id)

    def _run_once(self, kind: str, job_id: str, work: Callable[[], str | None]) -> bool:
        """Run a job listed as running (a stop waits for it), timed, and with any failure logged
        once as this job's: the next run is another chance. `work` may name another outcome than ok.
        True when it was woken meanwhile."""
        with self._lock:
            self._running.append(job_id)
        started, outcome = time.monotonic(), "ok"
        try:
            outcome = work() or "ok"
        except Stopping:
            outcome = "stopped"
        except Exception:  # a job's failure must not end the service; the traceback is in the log
            outcome = "error"
            log.exception("%s job failed", kind)
        finally:
            JOB_RUNS.labels(kind, outcome).inc()
            JOB_DURATION.labels(kind).observe(time.monotonic() - started)
            with self._lock:
                self._running.remove(job_id)
                again = job_id in self._woken_while_running
                self._woken_while_running.discard(job_id)
        return again

    def running_jobs(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    def _sync(self, name: str) -> str | None:
        """One source, synced as `custody sync` syncs it: read by a reader process while this one
        writes, so a large first sync parses beside the writes and the other sources' jobs."""
        rt = self.rt
        source = next((s for s in rt.settings.sources if s.name == name), None)
        if source is None:
            return None
        if self._synced_elsewhere_lately(name):
            return ELSEWHERE
        [report] = sync_sources(rt.engine, rt.settings, rt.policy, [source], progress=self._batch_stored,
                                held_since=self.loaded_at)
        if not report.claimed_at:
            log.debug("sync %s skipped: %s", name, report.error)
            if report.error != TAKEN:
                return "held"
            self._retry(name, utcnow() + TAKEOVER_CHECK)
            return ELSEWHERE
        record_sync(report, time.time())
        if report.retry_at is not None:
            self._retry(name, report.retry_at)
        if not report.ok:
            return "failed"
        self._synced_here[name] = utcnow()
        level = logging.INFO if report.messages or report.entries or report.events or report.skipped else logging.DEBUG
        log.log(level, "synced %s in %.1f s: read %d messages (%d new), %d address-book entries, %d directory events, "
                "%d skipped", name, report.seconds, report.messages, report.new_messages, report.entries, report.events,
                report.skipped)
        if report.new_messages or report.events:
            self.wake("departures")

    def _synced_elsewhere_lately(self, name: str) -> bool:
        """Another daemon on the registry synced this source since this one started, less than half
        an interval ago: with several instances each source is still synced about once per interval."""
        with self.rt.engine.connect() as db:
            last = db.execute(select(Source.last_success).where(Source.name == name)).scalar()
        half = timedelta(minutes=self.rt.settings.service.sync_interval_minutes / 2)
        mine = self._synced_here.get(name, self.started_at)
        return last is not None and as_utc(last) > mine and utcnow() - as_utc(last) < half

    def _retry(self, name: str, at: datetime) -> None:
        """Sync again at `at`, not a whole interval later: when a transient failure's decision chose,
        or soon when another daemon held the source."""
        try:
            self.scheduler.modify_job(f"sync:{name}", next_run_time=at)
        except JobLookupError:
            return

    def _batch_stored(self, source: str, _items: int) -> None:
        """Called once a batch and its cursor have committed: the one safe place to end a sync early."""
        BATCHES.labels(source).inc()
        if self.stopping.is_set():
            raise Stopping

    def _departures(self) -> None:
        rt = self.rt
        lines = departure_round(rt.engine, rt.policy, rt.settings.service.hr_folder)
        for line in lines:
            log.info("departure: %s", line)
        DEPARTURE_ACTIONS.inc(len(lines))
        if lines:
            self.wake("outbox")

    def _outbox(self) -> None:
        """Run as a leased round although each send is claimed on its own: one dispatcher at a time
        keeps the policy's rate limits exact across instances."""
        rt = self.rt
        report = outbox_round(rt.engine, rt.settings, rt.policy.dispatch)
        record_outbox(report)
        level = logging.WARNING if report.get("error") else logging.INFO if busy(report) else logging.DEBUG
        log.log(level, "outbox: %s", changes(report))

    def _coverage(self) -> None:
        report = coverage_round(self.rt.engine, self.rt.policy, utcnow())
        log.log(logging.INFO if busy(report) else logging.DEBUG, "coverage: %s", changes(report))

    # Probes

    def health(self) -> dict[str, object]:
        """Alive: the scheduler runs and the service is not stopping. Never asks the database, so a
        database outage makes the service unready, not restarted."""
        state = "stopping" if self.stopping.is_set() else ("running" if self.scheduler.running else "stopped")
        return {"ok": state == "running", "scheduler": state, "jobs": len(self.scheduler.get_jobs()),
                "running_jobs": self.running_jobs()}

    def readiness(self) -> dict[str, object]:
        """Ready: alive, the registry answers at the revision this code expects, and no source has
        been failing for longer than `service.ready_failing_minutes` (counted from its last good
        sync, or from this service's start when that is later)."""
        body: dict[str, object] = dict(self.health())
        rt = self.rt
        try:
            state = migration_state(rt.engine, rt.settings.database_schema or None)
            failing = self._failing_sources()
        except SQLAlchemyError as error:
            body.update(ok=False, database=f"unreachable: {first_line(error)}")
            return body
        body["database"] = "ok"
        body["migrations"] = "current" if state.current else state.describe()
        body["failing_sources"] = failing
        body["ok"] = bool(body["ok"]) and state.current and not failing
        return body

    def _failing_sources(self) -> dict[str, dict[str, str]]:
        rt = self.rt
        limit = timedelta(minutes=rt.settings.service.ready_failing_minutes)
        configured = {source.name for source in rt.settings.sources}
        now = utcnow()
        with rt.engine.connect() as db:
            rows = db.execute(select(Source.name, Source.last_success, Source.last_error)
                              .where(Source.status.in_(SourceStatus.failed()))).all()
        failing = {}
        for name, last_success, error in rows:
            since = max(as_utc(last_success), self.started_at) if last_success else self.started_at
            if name in configured and now - since > limit:
                failing[name] = {"since": since.isoformat(timespec="seconds"), "error": " ".join(error.split())[:300]}
        return failing

    # Life

    def reload(self) -> None:
        """Re-read the config and the policy and reschedule; a bad file is logged and changes nothing."""
        try:
            fresh = self.rt.reloaded()
        except ConfigError as error:
            log.error("reload refused, still running with the previous config: %s", error)
            return
        later = [key for key, value in RESTART_KEYS.items() if value(fresh) != value(self.rt)]
        configure_logging(fresh.settings.log_level, fresh.log_format)
        self.rt = fresh
        self.loaded_at = utcnow()
        self.schedule()
        log.info("reloaded config and policy%s", f"; a restart is needed to change {', '.join(later)}" if later else "")

    def serve_until_stopped(self, inbox: SignalInbox) -> bool:
        """Run until SIGTERM or SIGINT, then stop; True when every job ended in time, False when
        some were abandoned (timeout, or a second signal)."""
        while (signum := inbox.next(None)) not in STOP_SIGNALS:
            if signum == signal.SIGHUP:
                self.reload()
        timeout = self.rt.settings.service.stop_timeout_seconds
        log.info("stopping on %s: no new jobs; running ones end at their next commit, within %g s (a second "
                 "signal stops at once)", signal.Signals(signum).name, timeout)
        self.stopping.set()
        self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + timeout
        while self.running_jobs() and (left := deadline - time.monotonic()) > 0:
            if inbox.next(min(left, 0.1)) in STOP_SIGNALS:
                log.info("second signal: stopping now")
                break
        abandoned = self.running_jobs()
        if abandoned:
            log.warning("stopped with jobs unfinished (%s): what they committed is kept, the rest is read or sent "
                        "again on the next start", ", ".join(abandoned))
        return not abandoned


def unscheduled(rt: Runtime) -> list[str]:
    """What the service will not do with this config, and why: said once at start, not discovered later."""
    settings = rt.settings
    idle = []
    if not settings.sources:
        idle.append("syncs (no [[sources]] in the config)")
    if not settings.sends_mail():
        idle.append("outbox (no [smtp], [graph_send] or [gmail_send] section: notifications stay pending; "
                    "`custody outbox run --dry-run DIR` writes them out for review)")
    if settings.service.hr_folder is None:
        idle.append("HR files (no service.hr_folder; departures come from `custody depart`)")
    return idle


def busy(report: dict[str, Any]) -> bool:
    return any(value for value in report.values() if not isinstance(value, bool))


def changes(report: dict[str, Any]) -> str:
    """A round's report without its zeros: `sent 3, held 1`, or `nothing to do`."""
    done = [f"{key} {value}" for key, value in report.items() if value and not isinstance(value, bool)]
    return ", ".join(done) or "nothing to do"


def run_service(rt: Runtime) -> None:
    """Serve probes and metrics and run the scheduler until SIGTERM or SIGINT; exit 0 either way.
    An address that cannot be bound is a config error naming its key."""
    service = Service(rt)
    settings = rt.settings.service
    try:
        server = serve(settings.listen_host, settings.listen_port, service.health, service.readiness)
    except OSError as error:
        key = "service.listen_port" if error.errno == errno.EADDRINUSE else "service.listen_host"
        raise ConfigError(f"{key}: cannot listen on {settings.listen_host}:{settings.listen_port}: "
                          f"{error.strerror or error}") from None
    collector = RegistryCollector(rt.engine, lambda: [source.name for source in service.rt.settings.sources])
    REGISTRY.register(collector)
    inbox = SignalInbox()
    try:
        service.schedule()
        service.scheduler.start()
        host, port = server.server_address[:2]
        log.info("custody running (pid %d): /healthz, /readyz and /metrics on http://%s:%d", os.getpid(), host, port)
        finished = service.serve_until_stopped(inbox)
    finally:
        inbox.close()
        server.shutdown()
        REGISTRY.unregister(collector)
    if not finished:
        logging.shutdown()
        sys.stderr.flush()
        os._exit(0)  # the abandoned jobs' threads would otherwise hold the interpreter open
    log.info("stopped")
