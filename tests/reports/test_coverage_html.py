"""The HTML report opened in headless Chromium: charts drawn, tables sortable, filterable and paged,
fitting a 1400-pixel window, printing landscape with its evidence, and not a single error in the
console. Talks to Chromium over the DevTools protocol."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import time
import unicodedata
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from datetime import time as clock
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from config.policy import load_policy
from config.settings import load_settings
from daemon.jobs.coverage import coverage_round
from daemon.sync.engine import sync_source
from demo.company import DemoCompany
from policies.identity import KnownRep
from registry.store import open_registry
from reports.classification import CustomerCoverage, RepActivity, record_snapshots
from reports.coverage import CoverageReport, export_report, stream_report, write_html
from reports.evidence import MessageEvidence, Person
from tests.conftest import DEMO_TODAY
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
    world = HandBuilt(engine)
    world.declare(KnownRep(ALICE, "Alice Smith"), KnownRep(BOB, "Bob <Jones>"), KnownRep(CAROL, "Carol White"))
    world.update_rep(ALICE, team="EMEA")
    world.update_rep(CAROL, team="APAC")
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
    export_report(engine, stream_report(engine, POLICY, NOW), "html", out, "test")
    return out


@pytest.fixture(scope="module")
def demo_report(demo_company: DemoCompany, sqlite_registry_template: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo company synced, its coverage round run as the service would, and its report written."""
    folder = tmp_path_factory.mktemp("demo-report")
    shutil.copyfile(sqlite_registry_template, folder / "registry.db")
    engine = open_registry(f"sqlite:///{folder / 'registry.db'}", migrate=False)
    settings = load_settings(demo_company.config_path)
    policy = load_policy(settings.policy_file)
    now = datetime.combine(DEMO_TODAY, clock(18), tzinfo=timezone.utc)
    for source in settings.sources:
        assert sync_source(engine, settings, policy, source).ok
    coverage_round(engine, policy, now)
    for fmt in ("html", "json"):
        export_report(engine, stream_report(engine, policy, now), fmt, folder / f"coverage.{fmt}", "test")
    engine.dispose()
    return folder / "coverage.html"


def customers_of(html_report: Path) -> list[dict[str, Any]]:
    """The same report's customers as its JSON export lists them."""
    return json.loads(html_report.with_suffix(".json").read_text(encoding="utf-8"))["customers"]


def open_page(browser: DevTools, page: Path, width: int = 1400) -> None:
    for domain in ("Runtime", "Log", "Page"):
        browser.call(f"{domain}.enable")
    browser.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
    browser.call("Page.navigate", url=page.as_uri())
    browser.wait_for("Page.loadEventFired")


def printed(browser: DevTools) -> tuple[Any, str]:
    """Print as a person would (the page's own paper settings), and the PDF with its text, ligatures unfolded."""
    pypdf = pytest.importorskip("pypdf", reason="pypdf reads the printed PDF (the test extra installs it)")
    data = browser.call("Page.printToPDF", preferCSSPageSize=True, printBackground=True)["data"]
    pdf = pypdf.PdfReader(io.BytesIO(base64.b64decode(data)))
    text = unicodedata.normalize("NFKC", "\n".join(page.extract_text() for page in pdf.pages))
    return pdf, text


def squeezed(text: str) -> str:
    """Text without white space: a PDF breaks lines wherever its columns wrap."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def test_the_html_report_renders_charts_and_tables_without_console_errors(browser: DevTools, report_file: Path) -> None:
    open_page(browser, report_file)

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
    assert "Dana </td> Lee" in browser.evaluate("document.getElementById('customers').textContent")
    assert "<script>alert(1)</script>" in browser.evaluate("document.getElementById('customers').textContent")

    browser.evaluate("var s = document.getElementById('class-filter'); s.value = 'contested';"
                     "s.dispatchEvent(new Event('change'))")
    visible = browser.evaluate("[...document.querySelectorAll('#customers tbody tr')].map(r => r.dataset.class)")
    assert visible == ["contested"]
    assert browser.evaluate("document.getElementById('shown').textContent") == "1 shown"

    assert browser.evaluate("document.querySelectorAll('script:not([type=\"application/json\"])').length") == 1
    assert browser.errors() == []


def test_customers_are_listed_most_at_risk_first_by_rep_name_with_the_contesting_teams(
        browser: DevTools, report_file: Path) -> None:
    open_page(browser, report_file)

    classes = browser.evaluate("[...document.querySelectorAll('#customers tbody tr')].map(r => r.dataset.class)")
    assert classes == ["personal-channel-only", *["single-threaded"] * 6, "contested", "dormant", "covered"]
    first_single = browser.evaluate("document.querySelectorAll('#customers tbody tr')[1].textContent")
    assert "solo4.example" in first_single
    reps = browser.evaluate("[...document.querySelectorAll('#customers tr[data-class=covered] td.c-reps span')]"
                            ".map(s => [s.textContent, s.title])")
    assert reps == [["Alice Smith", ALICE], ["Bob <Jones>", BOB]]
    contested = browser.evaluate("document.querySelector('#customers tr[data-class=contested]').cells[1].textContent")
    assert "by APAC, EMEA" in contested
    assert browser.evaluate("[...document.querySelectorAll('#reps tbody td:first-child span')].map(s => s.title)") == [
        BOB, ALICE, CAROL]


def test_nothing_overflows_its_box_in_a_1400_pixel_window(browser: DevTools, demo_report: Path) -> None:
    open_page(browser, demo_report, width=1400)

    overflowing = browser.evaluate(
        "[...document.querySelectorAll('section, table')].filter(e => e.scrollWidth > e.clientWidth + 1)"
        ".map(e => (e.id || e.tagName) + ': ' + e.scrollWidth + ' > ' + e.clientWidth)")
    assert overflowing == []
    assert browser.evaluate("document.documentElement.scrollWidth") <= 1400
    assert browser.errors() == []


def test_the_customers_table_shows_a_hundred_at_a_time_with_owners_from_the_policy(
        browser: DevTools, demo_report: Path) -> None:
    """The data travels once as JSON; the page draws a hundred rows, so half a million customers open."""
    open_page(browser, demo_report)
    rows = "document.querySelectorAll('#customers tbody tr')"

    assert browser.evaluate(f"{rows}.length") == 100
    assert browser.evaluate("document.getElementById('page').textContent") == "1\u2013100 of 300"
    browser.evaluate("document.getElementById('next').click(); document.getElementById('next').click()")
    assert browser.evaluate("document.getElementById('page').textContent") == "201\u2013300 of 300"
    assert browser.evaluate("document.getElementById('next').disabled") is True
    covered_owners = browser.evaluate(
        f"[...{rows}].filter(r => r.dataset.class === 'covered').map(r => r.querySelector('td:nth-child(3) span'))"
        ".map(s => s && s.title)")
    assert covered_owners and all(owner and owner.endswith("@northwind-demo.example") for owner in covered_owners)

    browser.evaluate("var s = document.getElementById('search'); s.value = 'APAC'; s.dispatchEvent(new Event('input'))")
    assert browser.evaluate("document.getElementById('page').textContent").startswith("1\u2013")
    assert browser.errors() == []


def test_printing_is_landscape_with_every_column_and_the_evidence_and_without_controls(
        browser: DevTools, demo_report: Path) -> None:
    """The demo's 300 customers printed: every row of the filter, evidence open, and no page cut."""
    open_page(browser, demo_report)

    pdf, text = printed(browser)

    assert all(page.mediabox.width > page.mediabox.height for page in pdf.pages)
    assert 2 <= len(pdf.pages) <= 36
    last_page_subject = next(m["subject"] for c in reversed(customers_of(demo_report)) for m in c["messages"]
                             if m["subject"].isascii() and len(m["subject"]) > 8)
    assert squeezed("Printed: 300 customers (every class), each with its evidence.") in squeezed(text)
    assert squeezed(last_page_subject) in squeezed(text)
    assert "evidence" in text and "personal-channel-only" in text
    assert "previous" not in text and "search" not in text
    assert browser.evaluate("document.querySelectorAll('#customers tbody tr').length") == 100


def test_printing_a_filtered_list_prints_that_list(browser: DevTools, demo_report: Path) -> None:
    open_page(browser, demo_report)
    browser.evaluate("var s = document.getElementById('class-filter'); s.value = 'contested';"
                     "s.dispatchEvent(new Event('change'))")
    contested = [c["customer"] for c in customers_of(demo_report) if c["class"] == "contested"]
    others = [c["customer"] for c in customers_of(demo_report) if c["class"] == "single-threaded"]

    pdf, text = printed(browser)

    assert len(pdf.pages) <= 3
    assert squeezed(f"Printed: {len(contested)} customers (class contested)") in squeezed(text)
    assert all(squeezed(key) in squeezed(text) for key in contested)
    assert not any(squeezed(key) in squeezed(text) for key in others)


def test_a_report_of_fifty_thousand_customers_opens_with_one_page_of_rows(browser: DevTools, tmp_path: Path) -> None:
    """The page holds the customers as data and draws a hundred, so its size is the data's, not the DOM's."""
    people = {f"rep{n}@corp.example": Person(f"rep{n}@corp.example", f"Rep {n}", "EMEA", "active") for n in range(50)}
    customers, messages = [], {}
    for n in range(50_000):
        email = f"rep{n % 50}@corp.example"
        customer = CustomerCoverage(n, f"customer{n}.example", f"Customer {n}", "organisation", "single-threaded",
                                    email, False, 3, NOW, 0, 0, 0)
        customer.reps.append(RepActivity(email, people[email].name, "active", 3, NOW))
        customers.append(customer)
        messages[n] = [MessageEvidence(NOW, "inbound", "company", email, f"Order {n}")]
    report = CoverageReport(NOW, POLICY, {"single-threaded": 50_000}, customers, [], [], people, messages)
    page = tmp_path / "large.html"
    with page.open("w", encoding="utf-8") as out:
        write_html(report, out)

    open_page(browser, page)

    assert browser.evaluate("document.querySelectorAll('#customers tbody tr').length") == 100
    assert browser.evaluate("document.getElementById('page').textContent") == "1\u2013100 of 50000"
    browser.evaluate("var s = document.getElementById('search'); s.value = 'customer49999.example';"
                     "s.dispatchEvent(new Event('input'))")
    assert browser.evaluate("document.querySelector('#customers tbody').textContent").count("Order 49999") == 1
    assert browser.errors() == []
