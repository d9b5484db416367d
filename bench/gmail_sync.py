"""Google Workspace (Gmail) sync speed against the fake Google of tests/servers/google.py; prints one JSON object.

Loads `--messages` messages (Enron's inboxes and sent folders as raw header blocks, or generated ones
without the corpus) into the mailboxes of a fake Workspace that answers every API call after
`--latency` seconds (the calls of a batch side by side) and refuses (429) a user's call beyond
`--quota` units in a rolling minute, as Gmail does. Then times custody's full sync and its
incremental sync with nothing new, and, in this process too, a bare google-api-python-client loop
making the same calls (messages.list, batches of `calls_per_batch` metadata gets) with the same
threads and the same pacing of `--units-per-minute` per user.

The goal it checks: the full sync within 1.2x of the time the quota allows, and one history request
per mailbox for an incremental sync with nothing new. Mailboxes are paced independently, so the
quota bound is the slowest mailbox's; the latency of the sequential calls of each mailbox bounds
the time too, and is reported beside it.

The fake runs in a child process, so its CPU (parsing batches, rendering 50,000 messages) is not
charged to custody through the GIL and its stored messages are not in custody's peak RSS, as with
the real Gmail. Between custody's syncs and the baseline the fake forgets the units it counted, as
if a minute had passed, so the baseline starts with the same empty quota as custody did.

    python bench/gmail_sync.py [--messages 50000 | --quick] [--latency 0.05] [--mailboxes N] [--quota 15000]
                               [--units-per-minute 14000] [--page-size 500] [--calls-per-batch 50]
                               [--workers 8] [--synthetic] [--nagle] [--profile FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import re
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

import httplib2  # noqa: E402
from google.oauth2 import service_account  # noqa: E402
from google_auth_httplib2 import AuthorizedHttp  # noqa: E402
from googleapiclient.discovery import build  # noqa: E402
from googleapiclient.errors import HttpError  # noqa: E402
from googleapiclient.http import BatchHttpRequest  # noqa: E402

import tests.servers.google as fake_google  # noqa: E402
from bench.cloud import ENRON, Fake, consume, mailbox_plan, peak_rss_mb, profiled, ratio  # noqa: E402
from connectors.google.connector import UNITS, GoogleConnector  # noqa: E402
from connectors.google.records import METADATA_HEADERS  # noqa: E402
from connectors.google.settings import MAIL_SCOPE, GoogleApp, GoogleSettings  # noqa: E402
from tests.servers.gmail_corpus import enron_gmail_messages  # noqa: E402
from tests.servers.google import USER_UNITS_PER_MINUTE, FakeGoogle, Workspace  # noqa: E402
from tests.support.google import google_source  # noqa: E402

DOMAIN = "enron.com"
QUICK_MESSAGES = 2_000
SYNTHETIC_PER_MAILBOX = 2_500
GMAIL_PAGE_MAX = 500
WINDOW_SECONDS = 60.0
_MESSAGE_ID = re.compile(rb"^(message-id:[ \t]*<?)", re.IGNORECASE | re.MULTILINE)
NOTES = {
    "units_per_mailbox": "profile + list x pages + get x messages = 1 + 5 x max(1, ceil(M / page_size)) + 5 x M",
    "quota_bound_seconds": "max over mailboxes of 60 x units / quota (mailboxes are paced independently): the time "
                           "the quota allows, as the goal states it",
    "quota_window_bound_seconds": "max over mailboxes of 60 x (ceil(units / quota) - 1): the fake's rolling minute admits "
                                  "a whole minute's units at once, so a client can beat quota_bound_seconds, and "
                                  "ratio_to_quota_bound can fall below 1",
    "sequential_requests_per_mailbox": "1 profile + pages lists + batches, one after another: a mailbox is one chain",
    "latency_bound_seconds": "max(latency x the longest mailbox's sequential requests, "
                             "latency x all sequential requests / min(workers, mailboxes))",
    "bound_seconds": "max(quota_bound_seconds, latency_bound_seconds)",
    "ratio_to_quota_bound": "full_sync.seconds / quota_bound_seconds",
    "ratio_to_bound": "full_sync.seconds / bound_seconds (goal: <= 1.2)",
    "pacing": "custody and the baseline pace each user at units_per_minute (custody's default 14,000, under Gmail's "
              "15,000), so a mailbox needing more than one minute's units waits for its oldest units to leave the minute",
    "requests": "HTTP requests to the Gmail API (profile, list, history, batch envelopes); token requests apart",
    "api_calls": "the calls Gmail charges: each call inside a batch counts, as it does for the quota",
    "quota_units": "units the fake charged (refused calls cost nothing)",
    "history_requests_per_mailbox": "incremental sync with nothing new: history.list requests / mailboxes (goal: 1.0)",
    "baseline_bare_client": "google-api-python-client and google-auth only, no custody code: the same calls, threads "
                            "and pacing rule, no records made; the messages resource is built once per mailbox, "
                            "not once per call",
    "peak_rss_mb": "this process (custody and the baseline, not the fake): resource.getrusage maxrss after custody's syncs",
    "fake_ms_per_batch": "the fake's own time from reading a batch to its answer (fake_ms_per_other_request: "
                         "the same for a single call); the client waits this plus the transfer and its own parsing",
    "fake_nagle": "false: the fake's sockets send without Nagle's delay (TCP_NODELAY), as its two sends per answer "
                  "would otherwise wait ~40 ms for the client's delayed ACK on every request",
    "batches": "consumed one at a time and dropped, as the sync engine stores and drops them",
}


@dataclass(frozen=True)
class Options:
    """What the fake is loaded with and how it answers; picklable for the child process."""

    messages: int
    mailboxes: int | None
    latency: float
    quota: int
    synthetic: bool
    nagle: bool


@dataclass(frozen=True)
class Loaded:
    """What the child tells this process about the Workspace it loaded: enough to act as its users
    and the messages per mailbox, from which the calls and units a sync needs follow."""

    base_url: str
    client_email: str
    service_account_info: dict[str, str]
    mailboxes: dict[str, int]
    source: str
    load_seconds: float


@dataclass(frozen=True)
class _Server:
    base_url: str


@dataclass(frozen=True)
class WorkspaceView:
    """The attributes of a fake `Workspace` that tests/support/google.py reads, for a workspace living
    in the child process, so custody signs in through google-auth exactly as the tests do."""

    client_email: str
    service_account_info: dict[str, str]
    server: _Server

    @classmethod
    def of(cls, loaded: Loaded) -> WorkspaceView:
        return cls(loaded.client_email, loaded.service_account_info, _Server(loaded.base_url))


# --- the fake, in its own process -------------------------------------------------------------------


def synthetic_messages(user: str) -> list[tuple[bytes, tuple[str, ...]]]:
    """A mailbox's worth of generated mail, two fifths received and three fifths sent, each with a
    few recipients like Enron's, for machines without the corpus."""
    mine = f"{user}@{DOMAIN}"
    found = []
    for n in range(SYNTHETIC_PER_MAILBOX):
        other = f"contact{n % 397}@customer{n % 31}.example"
        received = n % 5 < 2
        sender, to = (other, mine) if received else (mine, f"{other}, cc{n % 7}@{DOMAIN}")
        date = format_datetime(datetime(2001, 1 + n % 12, 1 + n % 28, n % 24, n % 60, tzinfo=UTC))
        raw = (f"Message-ID: <{user}.{n}@synthetic.example>\r\nDate: {date}\r\nFrom: {sender}\r\nTo: {to}\r\n"
               f"Cc: team{n % 5}@{DOMAIN}\r\nSubject: Synthetic {n // 3}\r\n\r\nSynthetic\r\n")
        found.append((raw.encode(), ("INBOX",) if received else ("SENT",)))
    return found


def load(workspace: Workspace, options: Options) -> tuple[dict[str, int], str]:
    """Fills the workspace's mailboxes; the Message-IDs of copies and repeats are made unique, as
    every message a real Workspace holds has its own."""
    synthetic = options.synthetic or not ENRON.is_dir()
    parsed: dict[str, list[tuple[bytes, tuple[str, ...]]]] = {}

    def mail_of(user: str) -> list[tuple[bytes, tuple[str, ...]]]:
        if user not in parsed:
            parsed[user] = synthetic_messages(user) if synthetic else list(enron_gmail_messages(ENRON / user))
        return parsed[user]

    if synthetic:
        available = [(f"synthetic{i:03d}", SYNTHETIC_PER_MAILBOX) for i in range(1000)]
    else:
        available = [(user.name, len(mail_of(user.name))) for user in sorted(ENRON.iterdir()) if user.is_dir()]
        available = [(user, count) for user, count in available if count]
    mailboxes: dict[str, int] = {}
    for index, (address, user, count) in enumerate(mailbox_plan(available, options.messages, options.mailboxes, DOMAIN)):
        workspace.add_user(address, user)
        mail = mail_of(user)
        copy = index // len(available)
        for n in range(count):
            raw, labels = mail[n % len(mail)]
            repeat = n // len(mail)
            if copy or repeat:
                raw = _MESSAGE_ID.sub(rb"\1" + f"c{copy}r{repeat}.".encode(), raw, count=1)
            workspace.add_message(address, raw, labels)
        mailboxes[address] = count
    return mailboxes, "synthetic" if synthetic else "enron"


def count_traffic(server: FakeGoogle) -> Counter[str]:
    """The fake counts calls per user but neither HTTP requests (a batch is one) nor its 429s;
    wrapping this one server object's entry points counts both without touching the fake's code."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    handle, call = server.handle, server._call

    def handled(request: Any) -> Any:
        kind = "token" if request.path == "/token" else "batch" if request.path.startswith("/batch") else "call"
        started = time.perf_counter()
        try:
            return handle(request)
        finally:
            with lock:
                seen[f"http_{kind}"] += 1
                seen[f"http_{kind}_microseconds"] += round((time.perf_counter() - started) * 1e6)

    def called(request: Any) -> Any:
        answer = call(request)
        if answer is not None and answer.status == 429:
            with lock:
                seen["throttled_429"] += 1
        return answer

    server.handle = handled  # type: ignore[method-assign]
    server._call = called  # type: ignore[method-assign]
    return seen


def call_kind(path: str) -> str:
    """messages.get, messages.list, history.list or getProfile, from a Gmail call's path."""
    last = path.rstrip("/").rsplit("/", 2)
    if last[-1] == "profile":
        return "profile"
    if last[-1] == "history":
        return "history"
    if last[-1] == "messages":
        return "list"
    return "get" if last[-2] == "messages" else "other"


def fake_counters(workspace: Workspace, seen: Counter[str]) -> dict[str, Any]:
    with workspace.lock:
        calls = {mailbox: dict(Counter(call_kind(path) for _, path in sent)) for mailbox, sent in workspace.requests.items()}
        return {"calls": calls, "units": dict(workspace.units), "token_requests": workspace.token_requests,
                **dict(seen), "cpu_seconds": time.process_time()}


def forget_quota(workspace: Workspace) -> None:
    """As if a minute had passed: every user's rolling minute of units empty again."""
    with workspace.lock:
        for box in workspace._mailboxes.values():
            box.spent.clear()
            box.spent_total = 0


def serve_fake(connection: Connection, options: Options) -> None:
    """Child process: start and load the fake, then answer "counters" and "forget_quota" until told "stop".
    The fake's handler writes its headers and its body in two sends; with Nagle's algorithm on, the
    body waits for the client's delayed ACK, about 40 ms a request on Linux, latency nobody configured."""
    if not options.nagle:
        fake_google._Handler.disable_nagle_algorithm = True
    with FakeGoogle(latency_seconds=options.latency) as server:
        workspace = server.create_workspace(DOMAIN)
        workspace.units_per_minute = options.quota
        seen = count_traffic(server)
        started = time.perf_counter()
        mailboxes, source = load(workspace, options)
        connection.send(Loaded(server.base_url, workspace.client_email, dict(workspace.service_account_info), mailboxes,
                               source, time.perf_counter() - started))
        while (command := connection.recv()) != "stop":
            if command == "forget_quota":
                forget_quota(workspace)
                connection.send(None)
            else:
                connection.send(fake_counters(workspace, seen))


def difference(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """What the fake counted between two snapshots."""
    kinds: Counter[str] = Counter()
    history: dict[str, int] = {}
    for mailbox, counts in after["calls"].items():
        earlier = before["calls"].get(mailbox, {})
        for kind, n in counts.items():
            kinds[kind] += n - earlier.get(kind, 0)
        history[mailbox] = counts.get("history", 0) - earlier.get("history", 0)
    units = {m: n - before["units"].get(m, 0) for m, n in after["units"].items()}

    def delta(key: str) -> int:
        return int(after.get(key, 0) - before.get(key, 0))

    return {"requests": delta("http_call") + delta("http_batch"), "batch_requests": delta("http_batch"),
            "api_calls": sum(kinds.values()), "batch_inner_calls": kinds["get"], "list_requests": kinds["list"],
            "profile_requests": kinds["profile"], "history_requests": kinds["history"], "history_per_mailbox": history,
            "quota_units": sum(units.values()), "max_quota_units_per_mailbox": max(units.values(), default=0),
            "throttled_429": delta("throttled_429"), "token_requests": delta("token_requests"),
            "fake_cpu_seconds": round(after["cpu_seconds"] - before["cpu_seconds"], 2),
            "fake_ms_per_batch": _mean_ms(delta("http_batch_microseconds"), delta("http_batch")),
            "fake_ms_per_other_request": _mean_ms(delta("http_call_microseconds"), delta("http_call"))}


def _mean_ms(microseconds: int, count: int) -> float | None:
    return round(microseconds / count / 1000, 1) if count else None


# --- custody and the baseline, in this process -------------------------------------------------------


class Pacer:
    """custody's pacing rule written out plainly for the baseline: a sliding minute of units per
    user, and a call that would go over waits for the oldest units to leave the minute."""

    def __init__(self, units_per_minute: int) -> None:
        self.limit = units_per_minute
        self._spent: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._total: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def take(self, user: str, units: int) -> None:
        while True:
            with self._lock:
                spent, now = self._spent[user], time.monotonic()
                while spent and spent[0][0] <= now - WINDOW_SECONDS:
                    self._total[user] -= spent.popleft()[1]
                if self._total[user] + units <= self.limit or not spent:
                    spent.append((now, units))
                    self._total[user] += units
                    return
                wait = spent[0][0] + WINDOW_SECONDS - now
            time.sleep(wait)


def bare_sync(loaded: Loaded, settings: GoogleSettings, page_size: int) -> dict[str, Any]:
    """What the API allows without custody: per mailbox, a delegated token, the historyId, then
    messages.list pages and each page's metadata in batches of `calls_per_batch`, by a thread pool
    of the same size, each user paced by the same rule; rate-refused calls go again after a second."""
    started, cpu = time.perf_counter(), time.process_time()
    pacer = Pacer(settings.units_per_minute)
    batch_uri = f"{loaded.base_url}/batch/gmail/v1"
    step = settings.calls_per_batch

    def metadata(messages: Any, http: AuthorizedHttp, ids: list[str]) -> tuple[int, int, list[str]]:
        """One batch: (answered, failed, refused for the rate)."""
        answered, failed, refused = 0, 0, []

        def take(request_id: str, _response: Any, error: Exception | None) -> None:
            nonlocal answered, failed
            if isinstance(error, HttpError) and error.status_code in (403, 429):
                refused.append(request_id)
            elif error is not None:
                failed += 1
            else:
                answered += 1

        batch = BatchHttpRequest(callback=take, batch_uri=batch_uri)
        for message_id in ids:
            batch.add(messages.get(userId="me", id=message_id, format="metadata", metadataHeaders=list(METADATA_HEADERS)),
                      request_id=message_id)
        batch.execute(http=http)
        return answered, failed, refused

    def mailbox(address: str) -> tuple[int, int, int]:
        credentials = service_account.Credentials.from_service_account_info(
            loaded.service_account_info, scopes=[MAIL_SCOPE], subject=address)
        http = AuthorizedHttp(credentials, http=httplib2.Http(timeout=settings.timeout_seconds))
        gmail = build("gmail", "v1", http=http, static_discovery=True, cache_discovery=False,
                      client_options={"api_endpoint": loaded.base_url})
        pacer.take(address, UNITS["profile"])
        gmail.users().getProfile(userId="me").execute()
        messages = gmail.users().messages()  # each users() and messages() builds its methods anew from discovery
        got = errors = pages = 0
        token = None
        while True:
            pacer.take(address, UNITS["list"])
            listing = messages.list(userId="me", maxResults=page_size, pageToken=token, includeSpamTrash=False).execute()
            pages += 1
            ids = [m["id"] for m in listing.get("messages", [])]
            for start in range(0, len(ids), step):
                waiting = ids[start:start + step]
                while waiting:
                    pacer.take(address, UNITS["get"] * len(waiting))
                    answered, failed, waiting = metadata(messages, http, waiting)
                    got, errors = got + answered, errors + failed
                    if waiting:
                        time.sleep(1.0)
            token = listing.get("nextPageToken")
            if not token:
                return got, errors, pages

    with ThreadPoolExecutor(min(settings.workers, len(loaded.mailboxes))) as pool:
        results = list(pool.map(mailbox, loaded.mailboxes))
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "messages": sum(r[0] for r in results), "errors": sum(r[1] for r in results),
            "pages": sum(r[2] for r in results)}


# --- bounds and the report ---------------------------------------------------------------------------


def mailbox_costs(messages: int, page_size: int, calls_per_batch: int) -> tuple[int, int]:
    """(quota units, sequential requests) of one mailbox's full sync: a profile, the list pages (one
    even when empty) and each page's batches."""
    size = min(page_size, GMAIL_PAGE_MAX)
    pages = max(1, math.ceil(messages / size))
    full_pages, rest = divmod(messages, size)
    batches = full_pages * math.ceil(size / calls_per_batch) + math.ceil(rest / calls_per_batch)
    units = UNITS["profile"] + UNITS["list"] * pages + UNITS["get"] * messages
    return units, 1 + pages + batches


def bounds(mailboxes: dict[str, int], settings: GoogleSettings, page_size: int, latency: float,
           quota: int) -> dict[str, float]:
    """The time below which no client can finish: the slowest mailbox's quota, and the latency of
    the calls each mailbox must make one after another."""
    costs = [mailbox_costs(n, page_size, settings.calls_per_batch) for n in mailboxes.values()]
    most = max(units for units, _ in costs)
    sequential = sum(requests for _, requests in costs)
    slowest = latency * max(requests for _, requests in costs)
    threads = latency * sequential / min(settings.workers, len(costs))
    quota_bound = WINDOW_SECONDS * most / quota
    return {"quota_units_needed": sum(units for units, _ in costs), "max_quota_units_per_mailbox": most,
            "sequential_requests_needed": sequential,
            "quota_bound_seconds": round(quota_bound, 3),
            "quota_window_bound_seconds": round(WINDOW_SECONDS * (math.ceil(most / quota) - 1), 3),
            "latency_bound_seconds": round(max(slowest, threads), 3),
            "bound_seconds": round(max(quota_bound, slowest, threads), 3)}


def settings_for(loaded: Loaded, folder: Path, args: argparse.Namespace) -> GoogleSettings:
    """Mail only: the goal is about messages, and contacts and the directory would add chains the
    message counts do not explain. Retries wait as shipped, not as the tests shorten them."""
    return google_source(WorkspaceView.of(loaded), folder, name="bench", mailboxes=list(loaded.mailboxes),  # type: ignore[arg-type]
                         read=["mail"], page_size=args.page_size, workers=args.workers,
                         calls_per_batch=args.calls_per_batch, units_per_minute=args.units_per_minute,
                         retry_wait_seconds=GoogleApp.model_fields["retry_wait_seconds"].default)


def measure(fake: Fake, args: argparse.Namespace) -> dict[str, Any]:
    """Full sync, incremental sync, then the baseline, each between two snapshots of the fake's counters."""
    loaded: Loaded = fake.loaded
    with tempfile.TemporaryDirectory(prefix="custody-bench-gmail-") as folder:
        settings = settings_for(loaded, Path(folder), args)
        rss_before = peak_rss_mb()
        first = fake.counters()
        with profiled(args.profile):
            full = consume(GoogleConnector(settings, batch_size=args.page_size).sync(None))
        second = fake.counters()
        again = consume(GoogleConnector(settings, batch_size=args.page_size).sync(full.cursor))
        third = fake.counters()
        rss_custody = peak_rss_mb()
        fake.ask("forget_quota")
        fourth = fake.counters()
        bare = bare_sync(loaded, settings, args.page_size)
        fifth = fake.counters()
    full_counts, again_counts, bare_counts = difference(second, first), difference(third, second), difference(fifth, fourth)
    limits = bounds(loaded.mailboxes, settings, args.page_size, args.latency, args.quota)
    mailboxes = len(loaded.mailboxes)
    history_per_mailbox = again_counts["history_requests"] / mailboxes
    return {
        "source": loaded.source,
        **({"note": f"Enron corpus not found at {ENRON}; generated messages instead"}
           if loaded.source == "synthetic" and not args.synthetic else {}),
        "messages": sum(loaded.mailboxes.values()), "mailboxes": mailboxes,
        "largest_mailbox": max(loaded.mailboxes.values()), "latency_seconds": args.latency,
        "quota_units_per_minute": args.quota, "units_per_minute": settings.units_per_minute,
        "page_size": args.page_size, "calls_per_batch": settings.calls_per_batch, "workers": settings.workers,
        "load_seconds": round(loaded.load_seconds, 2), "fake_nagle": args.nagle,
        "full_sync": {
            "seconds": round(full.seconds, 3), "messages_per_second": round(full.records / full.seconds),
            "records": full.records, "skipped": full.skipped, "pages": full.batches,
            **{k: v for k, v in full_counts.items() if k not in ("history_per_mailbox", "fake_cpu_seconds")},
            "client_cpu_seconds": round(full.cpu_seconds, 2), "fake_cpu_seconds": full_counts["fake_cpu_seconds"],
        },
        "incremental_sync": {
            "seconds": round(again.seconds, 3), "records": again.records, "requests": again_counts["requests"],
            "api_calls": again_counts["api_calls"], "history_requests": again_counts["history_requests"],
            "history_requests_per_mailbox": round(history_per_mailbox, 3),
            "most_history_requests_in_a_mailbox": max(again_counts["history_per_mailbox"].values(), default=0),
            "quota_units": again_counts["quota_units"], "throttled_429": again_counts["throttled_429"],
            "token_requests": again_counts["token_requests"],
        },
        "baseline_bare_client": {
            "seconds": round(bare["seconds"], 3), "messages_per_second": round(bare["messages"] / bare["seconds"]),
            "messages": bare["messages"], "errors": bare["errors"], "pages": bare["pages"],
            **{k: v for k, v in bare_counts.items() if k not in ("history_per_mailbox", "history_requests", "fake_cpu_seconds")},
            "client_cpu_seconds": round(bare["cpu_seconds"], 2), "fake_cpu_seconds": bare_counts["fake_cpu_seconds"],
        },
        **limits,
        "ratio_to_quota_bound": ratio(full.seconds, limits["quota_bound_seconds"]),
        "ratio_to_bound": ratio(full.seconds, limits["bound_seconds"]),
        "baseline_ratio_to_bound": ratio(bare["seconds"], limits["bound_seconds"]),
        "custody_over_baseline": round(full.seconds / bare["seconds"], 3),
        "goal_met": full.seconds <= 1.2 * limits["bound_seconds"] and again_counts["history_requests"] == mailboxes
        and again_counts["api_calls"] == mailboxes,
        "rss_before_sync_mb": rss_before, "peak_rss_mb": rss_custody,
        "cpu_count": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2),
        "notes": NOTES,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, help="default 50,000 (2,000 with --quick)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_MESSAGES:,} messages unless --messages says otherwise")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake waits before each API call's answer")
    parser.add_argument("--mailboxes", type=int, help="default: one Enron user's mail each, until --messages is reached")
    parser.add_argument("--quota", type=int, default=USER_UNITS_PER_MINUTE, help="the fake's units per user per minute")
    parser.add_argument("--units-per-minute", type=int, default=GoogleApp.model_fields["units_per_minute"].default,
                        help="custody's (and the baseline's) pacing per user")
    parser.add_argument("--page-size", type=int, default=500, help="the connector's page_size (and batch_size)")
    parser.add_argument("--calls-per-batch", type=int, default=GoogleSettings.model_fields["calls_per_batch"].default)
    parser.add_argument("--workers", type=int, default=GoogleSettings.model_fields["workers"].default,
                        help="the connector's workers: mailboxes read at once")
    parser.add_argument("--synthetic", action="store_true", help="generated messages instead of the Enron corpus")
    parser.add_argument("--nagle", action="store_true",
                        help="leave Nagle's algorithm on in the fake: ~40 ms more per request (delayed ACK)")
    parser.add_argument("--profile", type=Path, help="write a cProfile (all threads) of the full sync here")
    args = parser.parse_args()
    if args.messages is None:
        args.messages = QUICK_MESSAGES if args.quick else 50_000
    if args.messages < 1 or (args.mailboxes is not None and args.mailboxes < 1) or args.quota < 1:
        parser.error("--messages, --mailboxes and --quota must be positive")
    fake = Fake(serve_fake, Options(args.messages, args.mailboxes, args.latency, args.quota, args.synthetic, args.nagle))
    gc.freeze()  # as the custody command does once its modules are loaded
    try:
        report = measure(fake, args)
    finally:
        fake.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
