"""`custody run` as a real subprocess for tests: started with a config, probed over HTTP, signalled.

Its stderr is read by a thread as it comes, so the service never blocks on a full pipe and a test
can wait for a log line or read them all after the process ended.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
WAIT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch(url: str) -> tuple[int, str]:
    """(status, body); (0, '') while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def wait_until(condition: Callable[[], T | None], what: str, seconds: float = WAIT_SECONDS) -> T:
    """Poll `condition` until it returns something truthy, which is returned."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never happened within {seconds} s: {what}")


def metric(exposition: str, sample: str) -> float | None:
    """The value of one sample line (name with labels, exactly as exposed), or None when absent."""
    for line in exposition.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return None


class Service:
    """One `custody --config CONFIG run` process listening on `port`."""

    def __init__(self, config: Path, port: int, *options: str) -> None:
        self.port = port
        self.process = subprocess.Popen([sys.executable, "-m", "daemon.cli.app", *options, "--config", str(config), "run"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, str]:
        return fetch(self.url(path))

    def probe(self, path: str) -> tuple[int, dict[str, object]]:
        status, body = self.get(path)
        return status, json.loads(body) if body else {}

    def metrics(self) -> str:
        return self.get("/metrics")[1]

    def wait_for_metric(self, sample: str, at_least: float = 1) -> str:
        """The exposition once `sample` reaches `at_least`."""
        def reached() -> str | None:
            self.assert_alive()
            exposition = self.metrics()
            value = metric(exposition, sample)
            return exposition if value is not None and value >= at_least else None
        return wait_until(reached, f"{sample} >= {at_least}")

    def wait_for_log(self, needle: str) -> str:
        return wait_until(lambda: next((line for line in self.lines if needle in line), None), f"log line {needle!r}")

    def assert_alive(self) -> None:
        if self.process.poll() is not None:
            self._reader.join(5)
            raise AssertionError(f"custody run exited with {self.process.returncode}:\n" + "\n".join(self.lines))

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = WAIT_SECONDS) -> int:
        """Signal the service and wait for it to exit; its exit code."""
        if self.process.poll() is None:
            self.send(signum)
        code = self.process.wait(timeout=timeout)
        self._reader.join(5)
        return code

    def messages(self) -> list[dict[str, str]]:
        """The JSON log lines so far, parsed."""
        return [json.loads(line) for line in self.lines if line.startswith("{")]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def service_config(folder: Path, port: int, sources: str, extra: str = "", service: str = "") -> Path:
    """A custody.toml for a service under test: `extra` top-level keys, `service` [service] keys."""
    (folder / "policy.yaml").write_text("company_domains: [acme.test]\n")
    config = folder / "custody.toml"
    config.write_text(f'data_dir = "data"\npolicy_file = "policy.yaml"\n{extra}'
                      f"[service]\nlisten_port = {port}\njitter_seconds = 0\n{service}{sources}")
    return config


def maildir_source(name: str, path: Path) -> str:
    return f'[[sources]]\nname = "{name}"\nkind = "maildir"\npath = "{path}"\nowner = "ann@acme.test"\n'
