"""Prometheus metrics and the HTTP endpoints of `custody run`: /metrics, /healthz and /readyz.

Metrics live in prometheus-client's default registry, which also carries the process collector
(resident memory, open file descriptors, CPU seconds). Counters count what this process did since
it started; the registry's state (outbox depth, handovers, coverage, source health) is read by a
cheap query at each scrape, so every instance reports the same numbers and a restart loses none.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from daemon.sync.engine import SyncReport
from registry.models import (
    CoverageSnapshot,
    Handover,
    Notification,
    Source,
    SourceStatus,
    as_utc,
    utcnow,
)

SYNCED = Counter("custody_sync_records", "Records syncs read and stored, by kind; a record read again is counted again "
                 "(storing it changes nothing)", ["source", "kind"])
SKIPPED = Counter("custody_sync_skipped", "Unreadable items skipped by sync", ["source"])
BATCHES = Counter("custody_sync_batches", "Batches stored with their cursor, counted as they commit", ["source"])
FAILURES = Counter("custody_sync_failures", "Syncs that ended with an error, by error class", ["source", "error_class"])
LAST_SUCCESS = Gauge("custody_sync_last_success_timestamp_seconds", "Unix time of this process's last good sync",
                     ["source"])
DURATION = Histogram("custody_sync_duration_seconds", "Wall time of one source sync", ["source"],
                     buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))
JOB_RUNS = Counter("custody_job_runs", "Scheduled job runs by outcome (ok, error, stopped)", ["job", "outcome"])
JOB_DURATION = Histogram("custody_job_duration_seconds", "Wall time of one scheduled job run", ["job"],
                         buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))
OUTBOX = Counter("custody_outbox_notifications", "What dispatch rounds did with notifications, by outcome",
                 ["outcome"])
DEPARTURE_ACTIONS = Counter("custody_departure_actions", "HR-file events, due handovers and plan updates the "
                            "departure job acted on")


def record_sync(report: SyncReport, finished_at: float) -> None:
    """Count a finished sync; one this process never claimed (another held it) is not counted."""
    SYNCED.labels(report.source, "message").inc(report.messages)
    SYNCED.labels(report.source, "new_message").inc(report.new_messages)
    SYNCED.labels(report.source, "address_book_entry").inc(report.entries)
    SYNCED.labels(report.source, "directory_event").inc(report.events)
    SKIPPED.labels(report.source).inc(report.skipped)
    DURATION.labels(report.source).observe(report.seconds)
    if report.ok:
        LAST_SUCCESS.labels(report.source).set(finished_at)
    else:
        FAILURES.labels(report.source, error_class(report)).inc()


def error_class(report: SyncReport) -> str:
    """`unexpected` (a bug, logged with its traceback), `reader_died` (a reader process was killed or
    crashed), else the decision the failure's class led to: `auth_failed`, `retrying` or `failing`."""
    if report.error.startswith("unexpected "):
        return "unexpected"
    if report.error.startswith("reader process died"):
        return "reader_died"
    return str(report.failure.status) if report.failure else "failing"


def record_outbox(report: dict[str, Any]) -> None:
    """Count a dispatch round's outcomes (sent, retrying, failed, refused, held, in_doubt, found_sent,
    requeued, quiet_hours, rate_limited, bounces)."""
    for outcome, count in report.items():
        if isinstance(count, int) and not isinstance(count, bool) and count:
            OUTBOX.labels(outcome).inc(count)


class RegistryCollector:
    """Gauges read from the registry at each scrape: each is one grouped query over a small table
    or an indexed column, so a scrape stays cheap on a registry of millions of messages."""

    def __init__(self, engine: Engine, sources: Callable[[], list[str]]) -> None:
        self.engine = engine
        self.sources = sources

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = self._families()
        up, since, failing, depth, handovers, coverage, taken = families
        try:
            with self.engine.connect() as db:
                now = utcnow()
                configured = set(self.sources())
                for name, status, last_success in db.execute(
                        select(Source.name, Source.status, Source.last_success)):
                    if name not in configured:
                        continue
                    failing.add_metric([name], float(status in SourceStatus.failed()))
                    if last_success is not None:
                        since.add_metric([name], (now - as_utc(last_success)).total_seconds())
                for state, count in db.execute(select(Notification.state, func.count()).group_by(Notification.state)):
                    depth.add_metric([state], count)
                for status, count in db.execute(select(Handover.status, func.count()).group_by(Handover.status)):
                    handovers.add_metric([status], count)
                latest = select(func.max(CoverageSnapshot.day)).scalar_subquery()
                moments = []
                for name, count, at in db.execute(select(CoverageSnapshot.coverage_class, CoverageSnapshot.customers,
                                                         CoverageSnapshot.taken_at)
                                                  .where(CoverageSnapshot.day == latest)):
                    coverage.add_metric([name], count)
                    moments.append(as_utc(at).timestamp())
                if moments:
                    taken.add_metric([], max(moments))
        except SQLAlchemyError:
            return iter([self._up(0)])
        up.add_metric([], 1)
        return iter(families)

    def _families(self) -> list[GaugeMetricFamily]:
        return [
            self._up(None),
            GaugeMetricFamily("custody_source_seconds_since_success", "Seconds since the source's last good sync "
                              "(by any process)", labels=["source"]),
            GaugeMetricFamily("custody_source_failing", "1 when the source's last sync failed (retrying, failing "
                              "or auth_failed)", labels=["source"]),
            GaugeMetricFamily("custody_outbox_depth", "Notifications in the outbox by state", labels=["state"]),
            GaugeMetricFamily("custody_handovers", "Handover plans by status", labels=["status"]),
            GaugeMetricFamily("custody_coverage_customers", "Customers per coverage class in the latest daily snapshot",
                              labels=["class"]),
            GaugeMetricFamily("custody_coverage_snapshot_timestamp_seconds", "When the latest coverage snapshot was taken"),
        ]

    @staticmethod
    def _up(value: float | None) -> GaugeMetricFamily:
        family = GaugeMetricFamily("custody_registry_up", "1 when the registry answered this scrape")
        if value is not None:
            family.add_metric([], value)
        return family


Probe = Callable[[], dict[str, object]]


def serve(host: str, port: int, health: Probe, ready: Probe) -> ThreadingHTTPServer:
    """Serve /metrics, /healthz and /readyz in a background thread; port 0 picks a free port.
    Raises OSError when the address cannot be bound (in use, unknown host)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
            elif self.path in ("/healthz", "/readyz"):
                state = (health if self.path == "/healthz" else ready)()
                self._reply(200 if state.get("ok") else 503, "application/json", json.dumps(state).encode())
            else:
                self._reply(404, "text/plain", b"not found\n")

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="custody-http", daemon=True).start()
    return server
