"""`custody run` as IT deploys it: scheduled syncs, health and Prometheus metrics, clean stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.mail import conversation, write_maildir


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(url: str, needle: str, process: subprocess.Popen[bytes]) -> str:
    for _ in range(300):
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            status, body = fetch(url)
        except OSError:
            status, body = 0, ""
        if status == 200 and needle in body:
            return body
        time.sleep(0.1)
    raise AssertionError(f"{url} never showed {needle!r}")


def metric(exposition: str, sample: str) -> float:
    return float(next(line for line in exposition.splitlines() if line.startswith(sample + " ")).split()[-1])


def test_service_syncs_on_start_reports_health_and_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    archive = write_maildir(tmp_path / "ann", {"INBOX": conversation("ann@acme.test", ["bo@shop.test"], 30)})
    port = free_port()
    config = tmp_path / "custody.toml"
    config.write_text(
        f'data_dir = "data"\npolicy_file = "policy.yaml"\n[service]\nlisten_port = {port}\njitter_seconds = 0\n'
        f'[[sources]]\nname = "ann"\nkind = "maildir"\npath = "{archive}"\nowner = "ann@acme.test"\n'
    )
    (tmp_path / "policy.yaml").write_text("company_domains: [acme.test]\n")
    process = subprocess.Popen([sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert '"ok": true' in wait_for(f"http://127.0.0.1:{port}/healthz", "ok", process)
        metrics = wait_for(f"http://127.0.0.1:{port}/metrics", 'custody_sync_records_total{kind="message",source="ann"} 30.0', process)
        assert 'custody_sync_last_success_timestamp_seconds{source="ann"}' in metrics
        assert 'custody_sync_duration_seconds_count{source="ann"} 1.0' in metrics
        assert metric(metrics, 'custody_sync_duration_seconds_sum{source="ann"}') > 0
        assert fetch(f"http://127.0.0.1:{port}/nothing")[0] == 404
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
