"""`custody run` as IT deploys it: scheduled syncs, probes, Prometheus metrics, quiet JSON logs, clean stop."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from demo.company import DemoCompany
from registry.models import Notification
from tests.conftest import POSTGRES_URL
from tests.servers.smtp import SmtpServer
from tests.support.demo import copy_company
from tests.support.mail import conversation, write_maildir
from tests.support.processes import gone, named_descendants
from tests.support.service import Service, free_port, maildir_source, metric, service_config, wait_until

DEPARTING = "wang.lei@northwind-demo.example"


def test_service_syncs_on_start_reports_health_and_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    archive = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 30)})
    port = free_port()
    service = Service(service_config(tmp_path, port, maildir_source("ann", archive)), port)
    try:
        metrics = service.wait_for_metric('custody_sync_records_total{kind="message",source="ann"}', 30)
        status, health = service.probe("/healthz")
        assert (status, health["ok"], health["scheduler"], health["jobs"]) == (200, True, "running", 3)
        assert 'custody_sync_last_success_timestamp_seconds{source="ann"}' in metrics
        assert metric(metrics, 'custody_sync_duration_seconds_count{source="ann"}') == 1
        assert metric(metrics, 'custody_sync_duration_seconds_sum{source="ann"}') > 0
        assert metric(metrics, 'custody_sync_batches_total{source="ann"}') == 1
        assert metric(metrics, 'custody_sync_failures_total{error_class="failing",source="ann"}') is None
        assert service.get("/nothing")[0] == 404
    finally:
        assert service.stop() == 0


def test_scheduled_syncs_fork_their_readers_from_the_launcher_and_both_end_with_the_service(tmp_path: Path) -> None:
    """`custody run` forks its launcher before it starts a thread: each sync that starts a reader
    forks it from there, with every module imported, instead of a new interpreter importing them."""
    archive = write_maildir(tmp_path / "ann", {"INBOX": conversation(
        "ann@acme.test", [f"bo{n}@shop{n % 5}.test" for n in range(20)], 5000)})
    port = free_port()
    config = service_config(tmp_path, port, maildir_source("ann", archive),
                            extra="batch_size = 20\nsync_readers_after_seconds = 0\n")
    service = Service(config, port)
    try:
        readers = wait_until(lambda: named_descendants(service.process.pid, "custody-reader"), "a reader started")
        [launcher] = named_descendants(service.process.pid, "custody-launch")
        assert set(readers) <= set(named_descendants(launcher, "custody-reader"))
        service.wait_for_metric('custody_sync_records_total{kind="message",source="ann"}', 5000)
    finally:
        assert service.stop() == 0
    assert gone([launcher, *readers])


def test_metrics_carry_the_process_and_the_registry_state_from_the_default_registry(tmp_path: Path) -> None:
    archive = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 6)})
    port = free_port()
    service = Service(service_config(tmp_path, port, maildir_source("ann", archive)), port)
    try:
        service.wait_for_metric('custody_job_runs_total{job="coverage",outcome="ok"}')
        metrics = service.wait_for_metric('custody_sync_duration_seconds_count{source="ann"}')
    finally:
        assert service.stop() == 0
    assert metric(metrics, "process_resident_memory_bytes") > 10_000_000
    assert metric(metrics, "process_open_fds") > 3
    assert metric(metrics, "custody_registry_up") == 1
    assert metric(metrics, 'custody_source_failing{source="ann"}') == 0
    assert 0 <= metric(metrics, 'custody_source_seconds_since_success{source="ann"}') < 600
    classes = [line for line in metrics.splitlines() if line.startswith("custody_coverage_customers{")]
    assert len(classes) == 6 and sum(float(line.split()[-1]) for line in classes) == 1  # shop.test, in one class
    assert metric(metrics, "custody_coverage_snapshot_timestamp_seconds") > 0
    assert metric(metrics, 'custody_job_runs_total{job="departures",outcome="ok"}') >= 1


def test_logs_are_quiet_json_lines_with_utc_times_and_say_once_what_is_not_scheduled(tmp_path: Path) -> None:
    empty = write_maildir(tmp_path / "empty", {})
    port = free_port()
    service = Service(service_config(tmp_path, port, maildir_source("empty", empty)), port)
    try:
        service.wait_for_metric('custody_sync_duration_seconds_count{source="empty"}')
        service.wait_for_metric('custody_job_runs_total{job="coverage",outcome="ok"}')
    finally:
        assert service.stop() == 0
    entries = service.messages()
    assert len(entries) == len(service.lines)
    for entry in entries:
        assert datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0)
    said = [entry["message"] for entry in entries if entry["level"] == "INFO"]
    assert re.fullmatch(r"registry: created at revision \w+", said[0])
    assert said[1].startswith("scheduled: 1 source syncs every 15 min")
    assert said[2] == ("not scheduled: outbox (no [smtp], [graph_send] or [gmail_send] section: notifications stay pending; "
                       "`custody outbox run --dry-run DIR` writes them out for review); HR files (no service.hr_folder; "
                       "departures come from `custody depart`)")
    assert said[3].startswith("custody running (pid ")
    assert said[4].startswith("stopping on SIGTERM") and said[5:] == ["stopped"]


def test_even_at_debug_the_log_holds_no_password_and_no_message_contents(tmp_path: Path) -> None:
    archive = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 6)})
    imap = (f'[[sources]]\nname = "mail"\nkind = "imap"\nhost = "127.0.0.1"\nport = {free_port()}\n'
            'security = "plain"\nusername = "ann"\npassword = "hunter2"\n'
            'retry_attempts = 1\nretry_wait_seconds = 0.05\n')
    port = free_port()
    config = service_config(tmp_path, port, maildir_source("ann", archive) + imap, extra='log_level = "DEBUG"\n')
    service = Service(config, port)
    try:
        service.wait_for_metric('custody_sync_duration_seconds_count{source="ann"}')
        service.wait_for_metric('custody_sync_failures_total{error_class="retrying",source="mail"}')
    finally:
        assert service.stop() == 0
    log = "\n".join(service.lines)
    assert "Connection refused" in log and "DEBUG" in log
    for secret in ("hunter2", "Order 1", "see attached figures"):
        assert secret not in log


def test_readyz_names_a_source_failing_longer_than_the_threshold_while_healthz_stays_ok(tmp_path: Path) -> None:
    archive = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 4)})
    port = free_port()
    sources = maildir_source("ann", archive) + maildir_source("gone", tmp_path / "gone")
    service = Service(service_config(tmp_path, port, sources, service="ready_failing_minutes = 0\n"), port)
    try:
        service.wait_for_metric('custody_sync_failures_total{error_class="failing",source="gone"}')
        service.wait_for_metric('custody_sync_duration_seconds_count{source="ann"}')
        status, body = service.probe("/readyz")
        assert status == 503
        assert (body["ok"], body["database"], body["migrations"]) == (False, "ok", "current")
        assert list(body["failing_sources"]) == ["gone"]  # type: ignore[call-overload]
        assert "gone" in body["failing_sources"]["gone"]["error"]  # type: ignore[index]
        assert service.probe("/healthz")[0] == 200
        assert metric(service.metrics(), 'custody_source_failing{source="gone"}') == 1
    finally:
        assert service.stop() == 0


class TcpProxy:
    """Forwards a local port to PostgreSQL; stopping it drops every connection and refuses new ones,
    as an outage would, without touching the machine's server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        assert self._listener is not None
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for connection in self._open:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()
        self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass


@pytest.fixture
def postgres_proxy() -> Iterator[TcpProxy]:
    url = make_url(POSTGRES_URL)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxy.start()
    yield proxy
    try:
        proxy.stop()
    except (AssertionError, OSError):
        pass


@pytest.mark.postgres
def test_readyz_turns_503_while_postgresql_is_unreachable_and_200_when_it_is_back(
    tmp_path: Path, postgres_schema_factory, postgres_proxy: TcpProxy,  # type: ignore[no-untyped-def]
) -> None:
    url = make_url(POSTGRES_URL).set(port=postgres_proxy.port).render_as_string(hide_password=False)
    archive = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 4)})
    port = free_port()
    extra = f'database_url = "{url}"\ndatabase_schema = "{postgres_schema_factory()}"\n'
    service = Service(service_config(tmp_path, port, maildir_source("ann", archive), extra=extra), port)
    try:
        service.wait_for_metric('custody_sync_duration_seconds_count{source="ann"}')
        status, ready = service.probe("/readyz")
        assert (status, ready["database"], ready["migrations"], ready["failing_sources"]) == (200, "ok", "current", {})
        postgres_proxy.stop()
        status, body = wait_until(lambda: (r := service.probe("/readyz"))[0] == 503 and r, "readyz says 503")
        assert body["ok"] is False and str(body["database"]).startswith("unreachable: ")
        assert service.probe("/healthz")[0] == 200
        assert metric(service.metrics(), "custody_registry_up") == 0
        postgres_proxy.start()
        wait_until(lambda: service.probe("/readyz")[0] == 200, "readyz says 200 again")
    finally:
        assert service.stop() == 0


def test_on_the_demo_company_the_service_syncs_classifies_and_dispatches_on_its_own(
    tmp_path: Path, smtp_server: SmtpServer, demo_company_today: DemoCompany,
) -> None:
    """An HR file dropped before start: the departure is planned at once, the customers the rep
    worked with join the plan as their mail is synced, and the outbox sends the farewell letters,
    each woken by the job before it instead of waiting for a timer."""
    company = copy_company(demo_company_today, tmp_path / "northwind")
    policy = yaml.safe_load(company.policy_path.read_text())
    policy["ownership"] = {"requires_approval": False, "grace_period_hours": 0}
    policy["dispatch"] = {"quiet_hours": None, "per_mailbox_per_hour": 0, "per_domain_per_hour": 0}
    company.policy_path.write_text(yaml.safe_dump(policy))
    hr = company.config_path.parent / "hr"
    hr.mkdir()
    tomorrow = date.today() + timedelta(days=1)
    (hr / "leavers.csv").write_text(f"email,action,effective_date\n{DEPARTING},leaver,{tomorrow}\n")
    port = free_port()
    with company.config_path.open("a") as config:
        config.write(f'\n[service]\nlisten_port = {port}\njitter_seconds = 0\nhr_folder = "hr"\n'
                     f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_server.port}\nsecurity = "plain"\n')
    service = Service(company.config_path, port)
    try:
        metrics = service.wait_for_metric('custody_outbox_notifications_total{outcome="sent"}', 1)
        metrics = service.wait_for_metric('custody_coverage_customers{class="single-threaded"}', 1)
        assert metric(metrics, 'custody_handovers{status="notifying"}') == 1
        assert metric(metrics, 'custody_outbox_depth{state="sent"}') >= 1
        assert metric(metrics, "custody_departure_actions_total") >= 1
    finally:
        assert service.stop() == 0
    engine = create_engine(f"sqlite:///{company.config_path.parent / 'data' / 'custody.db'}")
    with engine.connect() as db:
        sent = set(db.execute(select(Notification.message_id_header).where(Notification.state == "sent")).scalars())
    engine.dispose()
    received = [mail.message_id for mail in smtp_server.received]
    assert sorted(received) == sorted(sent)
    assert not [entry for entry in service.messages() if entry["level"] == "ERROR"]
