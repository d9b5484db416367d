"""`custody run`: the long-running service that schedules every job.

Each job is safe to run twice and beside itself in another process (sources are leased in the
registry), so several daemons can share one PostgreSQL.
"""

from __future__ import annotations

import logging
import signal
import time
from datetime import datetime, timezone
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import text

from config.sections import SourceConfig
from daemon.coverage_jobs import coverage_round
from daemon.departure import departure_round
from daemon.metrics import record_sync, serve
from daemon.outbox_round import outbox_round
from daemon.runtime import Runtime
from daemon.sync import sync_sources
from registry.models import utcnow

log = logging.getLogger("custody.service")


def sync_job(rt: Runtime, source: SourceConfig) -> None:
    """One source, synced as `custody sync` syncs it: read here while a reader process starts, and by
    that reader once it is up, so a large first sync parses beside the writes (and beside the other
    sources' jobs) instead of under this process's one GIL."""
    [report] = sync_sources(rt.engine, rt.settings, rt.policy, [source])
    record_sync(report, report.seconds, time.time())
    log.info("synced %s in %.1f s: %d messages, %d entries, %d skipped%s", report.source, report.seconds,
             report.messages, report.entries, report.skipped, f", error: {report.error}" if report.error else "")


def departure_job(rt: Runtime) -> None:
    for line in departure_round(rt.engine, rt.policy, rt.settings.service.hr_folder):
        log.info("departure: %s", line)


def outbox_job(rt: Runtime) -> None:
    log.info("outbox: %s", outbox_round(rt.engine, rt.settings, rt.policy.dispatch))


def coverage_job(rt: Runtime) -> None:
    log.info("coverage: %s", coverage_round(rt.engine, rt.policy, utcnow()))


def build_scheduler(rt: Runtime) -> BlockingScheduler:
    scheduler = BlockingScheduler(timezone=timezone.utc)
    service = rt.settings.service
    for source in rt.settings.sources:
        scheduler.add_job(
            sync_job, IntervalTrigger(minutes=service.sync_interval_minutes, jitter=service.jitter_seconds),
            args=(rt, source), id=f"sync:{source.name}", name=f"sync {source.name}",
            max_instances=1, coalesce=True, next_run_time=datetime.now(timezone.utc),
        )
    scheduler.add_job(
        departure_job, IntervalTrigger(minutes=service.handover_interval_minutes), args=(rt,), id="departures",
        name="HR files and due handovers", max_instances=1, coalesce=True, next_run_time=datetime.now(timezone.utc),
    )
    if rt.settings.smtp is not None:
        scheduler.add_job(
            outbox_job, IntervalTrigger(minutes=service.handover_interval_minutes), args=(rt,), id="outbox",
            name="send due notifications, read bounces", max_instances=1, coalesce=True,
        )
    scheduler.add_job(
        coverage_job, IntervalTrigger(hours=6), args=(rt,), id="coverage",
        name="contact merges, dormant recycling, owners, daily coverage snapshot", max_instances=1, coalesce=True,
    )
    return scheduler


def health(rt: Runtime) -> dict[str, object]:
    """Healthy when the registry answers; the scheduler thread is this process itself."""
    try:
        with rt.engine.connect() as db:
            db.execute(text("select 1"))
    except Exception as error:  # any database failure makes the service unhealthy, with the reason
        return {"ok": False, "registry": type(error).__name__}
    return {"ok": True, "registry": "ok", "sources": len(rt.settings.sources)}


def run_service(rt: Runtime) -> None:
    """Serve health and metrics, run the scheduler until SIGTERM or SIGINT."""
    service = rt.settings.service
    server = serve(service.listen_host, service.listen_port, lambda: health(rt))
    scheduler = build_scheduler(rt)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping on signal %d", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    log.info("custody running: health and metrics on http://%s:%d", host, port)
    try:
        scheduler.start()
    finally:
        server.shutdown()
