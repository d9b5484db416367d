"""The HTML report opened in headless Chromium: charts drawn, tables sortable and filterable,
and not a single error in the console. Talks to Chromium over the DevTools protocol."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from policies.identity import KnownRep
from reports.classification import record_snapshots
from reports.coverage import build_report, export_report
from tests.support.handbuilt import NOW, POLICY, HandBuilt, entry, rep

websocket = pytest.importorskip("websocket", reason="websocket-client is needed to drive Chromium")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian package 'chromium')")
ALICE, BOB, CAROL = rep("alice"), rep("bob"), rep("carol")


class DevTools:
    """A minimal DevTools protocol client: commands, and every event kept for inspection."""

    def __init__(self, url: str) -> None:
        self.socket = websocket.create_connection(url, timeout=30)
        self.events: list[dict[str, Any]] = []
        self._next = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        self.socket.send(json.dumps({"id": self._next, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self._next:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            self.events.append(json.loads(self.socket.recv()))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(result["exceptionDetails"])
        return result["result"].get("value")

    def errors(self) -> list[str]:
        found = []
        for event in self.events:
            params = event.get("params", {})
            if event.get("method") == "Runtime.exceptionThrown":
                found.append(params["exceptionDetails"].get("text", "exception"))
            elif event.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                found.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif event.get("method") == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                found.append(params["entry"]["text"])
        return found


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    profile = tmp_path / "chromium-profile"
    process = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            page = next(t for t in json.load(answer) if t["type"] == "page")
        tools = DevTools(page["webSocketDebuggerUrl"])
        yield tools
        tools.socket.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def report_file(engine: Engine, tmp_path: Path) -> Path:
    world = HandBuilt(engine, reps=(KnownRep(ALICE, "Alice Smith"), KnownRep(BOB, "Bob <Jones>"),
                                    KnownRep(CAROL, "Carol White")))
    world.conversation(ALICE, "buyer@acme.example", 3, days_ago=10)
    world.mail(BOB, "cfo@acme.example", days_ago=12)
    world.conversation(ALICE, "a@initech.example", 2, days_ago=30)
    world.conversation(CAROL, "c@initech.example", 2, days_ago=20)
    for n in range(5):
        world.conversation(BOB, f"x@solo{n}.example", n + 1, days_ago=40 + n)
    world.mail(ALICE, "ops@globex.example", days_ago=30, cc="alice.smith@gmail.com", subject="<script>alert(1)</script>")
    world.mail(CAROL, "old@sleepy.example", days_ago=500)
    world.address_book(BOB, "personal", entry("9", "Dana </td> Lee", ("dana@umbrella.example",)))
    record_snapshots(engine, POLICY, NOW, days=60)
    out = tmp_path / "coverage.html"
    export_report(engine, build_report(engine, POLICY, NOW), "html", out, "test")
    return out


def test_the_html_report_renders_charts_and_tables_without_console_errors(browser: DevTools, report_file: Path) -> None:
    browser.call("Runtime.enable")
    browser.call("Log.enable")
    browser.call("Page.enable")
    browser.call("Page.navigate", url=report_file.as_uri())
    browser.wait_for("Page.loadEventFired")

    assert browser.evaluate("document.querySelectorAll('#chart-classes rect.bar').length") == 6
    assert browser.evaluate("document.querySelectorAll('#chart-exposure rect.bar').length") == 2 * 2
    assert browser.evaluate("document.querySelectorAll('#chart-trend polyline.series').length") == 6
    assert browser.evaluate("document.querySelector('#chart-trend polyline').getAttribute('points').split(' ').length") == 60
    assert browser.evaluate("document.querySelector('#chart-classes').getBoundingClientRect().width") > 100
    assert browser.evaluate("document.querySelectorAll('#customers tbody tr').length") == 10
    assert browser.evaluate("document.querySelectorAll('#reps tbody tr').length") == 3

    browser.evaluate("document.querySelectorAll('#customers th')[4].click()")
    ascending = browser.evaluate("[...document.querySelectorAll('#customers tbody tr')].map(r => +r.cells[4].textContent)")
    browser.evaluate("document.querySelectorAll('#customers th')[4].click()")
    descending = browser.evaluate("[...document.querySelectorAll('#customers tbody tr')].map(r => +r.cells[4].textContent)")
    assert ascending == sorted(ascending) and descending == sorted(ascending, reverse=True)
    assert ascending[-1] == 5

    browser.evaluate("var s = document.getElementById('class-filter'); s.value = 'contested';"
                     "s.dispatchEvent(new Event('change'))")
    visible = browser.evaluate("[...document.querySelectorAll('#customers tbody tr')].filter(r => !r.hidden)"
                               ".map(r => r.dataset.class)")
    assert visible == ["contested"]
    assert browser.evaluate("document.getElementById('shown').textContent") == "1 shown"

    assert browser.evaluate("document.querySelectorAll('script').length") == 1
    assert "Dana </td> Lee" in browser.evaluate("document.body.textContent")
    assert browser.errors() == []
