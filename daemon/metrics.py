"""Prometheus metrics and the health endpoint of `custody run`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from daemon.sync import SyncReport

REGISTRY = CollectorRegistry()
SYNCED = Counter("custody_sync_records", "Records stored by sync", ["source", "kind"], registry=REGISTRY)
SKIPPED = Counter("custody_sync_skipped", "Unreadable items skipped by sync", ["source"], registry=REGISTRY)
FAILURES = Counter("custody_sync_failures", "Syncs that ended with an error", ["source"], registry=REGISTRY)
LAST_SUCCESS = Gauge("custody_sync_last_success_timestamp_seconds", "Unix time of the last good sync",
                     ["source"], registry=REGISTRY)
DURATION = Histogram("custody_sync_duration_seconds", "Wall time of one source sync", ["source"], registry=REGISTRY,
                     buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600))


def record_sync(report: SyncReport, seconds: float, finished_at: float) -> None:
    SYNCED.labels(report.source, "message").inc(report.messages)
    SYNCED.labels(report.source, "address_book_entry").inc(report.entries)
    SKIPPED.labels(report.source).inc(report.skipped)
    DURATION.labels(report.source).observe(seconds)
    if report.ok:
        LAST_SUCCESS.labels(report.source).set(finished_at)
    else:
        FAILURES.labels(report.source).inc()


def serve(host: str, port: int, health: Callable[[], dict[str, object]]) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz in a background thread; port 0 picks a free port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/metrics":
                self._reply(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
            elif self.path == "/healthz":
                state = health()
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
    threading.Thread(target=server.serve_forever, name="custody-http", daemon=True).start()
    return server
