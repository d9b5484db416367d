"""Microsoft 365 (Graph) sync speed against the fake Graph of tests/servers/graph.py; prints one JSON object.

Loads `--messages` messages (Enron's inboxes and sent folders, or generated ones without the corpus)
into the mailboxes of a fake tenant that answers every mailbox request after `--latency` seconds and
refuses (429) a mailbox's request beyond `--concurrency` in flight, as Exchange Online documents.
Then times custody's full sync and its incremental sync with nothing new, and, in this process too,
a bare `requests` loop paging the same delta chains with the same threads and per-mailbox gates.

The goal it checks: the full sync within 1.2x of `requests needed x latency / concurrency`, and
one request per folder for an incremental sync with nothing new. A delta chain is sequential, so
that bound can be out of reach when few mailboxes hold the messages; a tighter bound that respects
the chains is reported beside it.

The fake runs in a child process, so its CPU (rendering and serialising 50,000 messages, TLS) is not
charged to custody through the GIL and its stored messages are not in custody's peak RSS, as with
the real Graph.

    python bench/graph_sync.py [--messages 50000] [--latency 0.05] [--concurrency 4] [--mailboxes N]
                               [--page-size 500] [--workers 8] [--synthetic] [--profile FILE]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

import requests  # noqa: E402

from bench.cloud import ENRON, Fake, consume, mailbox_plan, peak_rss_mb, profiled, ratio  # noqa: E402
from connectors.graph.connector import FOLDERS, GraphConnector  # noqa: E402
from connectors.graph.records import MESSAGE_FIELDS  # noqa: E402
from connectors.graph.settings import GraphSettings  # noqa: E402
from tests.servers.graph import FakeGraph, GraphError, Tenant  # noqa: E402
from tests.servers.graph_corpus import enron_mailbox_messages  # noqa: E402
from tests.support.graph import graph_source, message  # noqa: E402

DOMAIN = "enron.com"
SYNTHETIC_PER_MAILBOX = 2_500
GRAPH_PAGE_MAX = 1_000
NOTES = {
    "documented_bound_seconds": "requests_needed x latency / concurrency, as the goal states it",
    "requests_needed": "sum over delta chains (mailbox x folder) of max(1, ceil(messages / page_size))",
    "chain_bound_seconds": "max(slowest_mailbox_bound_seconds, threads_bound_seconds): a delta chain is sequential",
    "slowest_mailbox_bound_seconds": "max over mailboxes of latency x max(longest chain's pages, "
                                     "mailbox pages / min(concurrency, mailbox chains))",
    "threads_bound_seconds": "requests_needed x latency / min(workers, chains, concurrency x mailboxes)",
    "ratio_to_limit": "full_sync.seconds / documented_bound_seconds (goal: <= 1.2)",
    "ratio_to_chain_bound": "full_sync.seconds / chain_bound_seconds",
    "baseline_ratio_to_limit": "baseline seconds / documented_bound_seconds: above 1.2 too, the fake or the machine is "
                               "the limit, not custody (the fake is one Python process: see fake_cpu_seconds)",
    "peak_rss_mb": "this process (custody and the baseline, not the fake): resource.getrusage maxrss after custody's syncs",
    "batches": "consumed one at a time and dropped, as the sync engine stores and drops them",
}


@dataclass(frozen=True)
class Options:
    """What the fake is loaded with and how it answers; picklable for the child process."""

    messages: int
    mailboxes: int | None
    latency: float
    concurrency: int
    synthetic: bool


@dataclass(frozen=True)
class Loaded:
    """What the child tells this process about the tenant it loaded: enough to sign in and the counts
    per mailbox and folder, from which the requests a sync needs follow."""

    base_url: str
    ca_file: str
    tenant_id: str
    client_id: str
    client_secret: str
    folders: dict[str, dict[str, int]]
    source: str
    load_seconds: float


@dataclass(frozen=True)
class _Server:
    base_url: str


@dataclass(frozen=True)
class TenantView:
    """The attributes of a fake `Tenant` that tests/support/graph.py reads, for a tenant living in
    the child process, so custody signs in through msal exactly as the tests do."""

    tenant_id: str
    client_id: str
    client_secret: str
    graph_url: str
    ca_file: str
    server: _Server

    @classmethod
    def of(cls, loaded: Loaded) -> TenantView:
        return cls(loaded.tenant_id, loaded.client_id, loaded.client_secret, loaded.base_url, loaded.ca_file,
                   _Server(loaded.base_url))


# --- the fake, in its own process -------------------------------------------------------------------


def synthetic_messages(user: str) -> list[tuple[str, dict[str, Any]]]:
    """A mailbox's worth of generated mail, two fifths received and three fifths sent, each with a
    few recipients like Enron's, for machines without the corpus."""
    mine = f"{user}@{DOMAIN}"
    found = []
    for n in range(SYNTHETIC_PER_MAILBOX):
        other = f"contact{n % 397}@customer{n % 31}.example"
        received = n % 5 < 2
        sent = f"2001-{1 + n % 12:02d}-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:00Z"
        found.append(("inbox" if received else "sentitems",
                      message(other if received else mine, [mine] if received else [other, f"cc{n % 7}@{DOMAIN}"],
                              f"Synthetic {n // 3}", f"<{user}.{n}@synthetic.example>", sent,
                              cc=(f"team{n % 5}@{DOMAIN}",))))
    return found


def load(tenant: Tenant, options: Options) -> tuple[dict[str, dict[str, int]], str]:
    """Fills the tenant's mailboxes; message ids of copies and repeats are made unique, as every
    message in a real tenant has its own."""
    synthetic = options.synthetic or not ENRON.is_dir()
    parsed: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    def mail_of(user: str) -> list[tuple[str, dict[str, Any]]]:
        if user not in parsed:
            parsed[user] = synthetic_messages(user) if synthetic else list(enron_mailbox_messages(ENRON / user))
        return parsed[user]

    if synthetic:
        available = [(f"synthetic{i:03d}", SYNTHETIC_PER_MAILBOX) for i in range(1000)]
    else:
        available = [(user.name, len(mail_of(user.name))) for user in sorted(ENRON.iterdir()) if user.is_dir()]
    folders: dict[str, dict[str, int]] = {}
    for index, (address, user, count) in enumerate(mailbox_plan(available, options.messages, options.mailboxes, DOMAIN)):
        user_id = tenant.add_user(address, user)
        mail = mail_of(user)
        copy = index // len(available)
        counts = dict.fromkeys(FOLDERS, 0)
        for n in range(count):
            folder, item = mail[n % len(mail)]
            repeat = n // len(mail)
            if copy or repeat:
                item = {**item, "internetMessageId": f"<c{copy}r{repeat}.{item['internetMessageId'].strip('<>')}>"}
            tenant.add_message(user_id, folder, item)
            counts[folder] += 1
        folders[address] = counts
    return folders, "synthetic" if synthetic else "enron"


def count_throttling(tenant: Tenant) -> list[int]:
    """The fake refuses with a 429 inside its admission step and keeps no count of it; wrapping that
    step of this one tenant object counts the refusals without touching the fake's code."""
    refused = [0]
    admit = tenant._admit

    def counted(user_id: str) -> None:
        try:
            admit(user_id)
        except GraphError as error:
            if error.status == 429:
                with tenant.lock:
                    refused[0] += 1
            raise

    tenant._admit = counted  # type: ignore[method-assign]
    return refused


def serve_fake(connection: Connection, options: Options) -> None:
    """Child process: start and load the fake, then answer "counters" until told "stop"."""
    with FakeGraph(latency_seconds=options.latency, mailbox_concurrency=options.concurrency) as server:
        tenant = server.create_tenant()
        refused = count_throttling(tenant)
        started = time.perf_counter()
        folders, source = load(tenant, options)
        connection.send(Loaded(server.base_url, server.ca_file, tenant.tenant_id, tenant.client_id, tenant.client_secret,
                               folders, source, time.perf_counter() - started))
        while connection.recv() == "counters":
            with tenant.lock:
                connection.send({"requests": {mailbox: len(sent) for mailbox, sent in tenant.requests.items()},
                                 "max_concurrency": dict(tenant.max_concurrency_seen), "throttled": refused[0],
                                 "token_requests": tenant.token_requests, "cpu_seconds": time.process_time()})


def difference(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """What the fake counted between two snapshots: requests per mailbox, 429s, tokens, its CPU."""
    requests_made = {m: n - before["requests"].get(m, 0) for m, n in after["requests"].items()}
    return {"requests": sum(requests_made.values()), "per_mailbox": requests_made,
            "throttled_429": after["throttled"] - before["throttled"],
            "token_requests": after["token_requests"] - before["token_requests"],
            "fake_cpu_seconds": round(after["cpu_seconds"] - before["cpu_seconds"], 2)}


# --- custody and the baseline, in this process -------------------------------------------------------


def bare_sync(loaded: Loaded, page_size: int, workers: int, concurrency: int) -> dict[str, Any]:
    """What the server allows without custody: a token, then each chain paged to its deltaLink by a
    thread of the same pool size, over one requests.Session per mailbox behind the same gate."""
    started, cpu = time.perf_counter(), time.process_time()
    token = requests.post(f"{loaded.base_url}/{loaded.tenant_id}/oauth2/v2.0/token", verify=loaded.ca_file, timeout=30, data={
        "grant_type": "client_credentials", "client_id": loaded.client_id, "client_secret": loaded.client_secret,
        "scope": f"{loaded.base_url}/.default"}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Prefer": f'odata.maxpagesize={page_size}, IdType="ImmutableId"'}
    sessions = {mailbox: _session(loaded.ca_file) for mailbox in loaded.folders}
    gates = {mailbox: threading.BoundedSemaphore(concurrency) for mailbox in loaded.folders}

    def chain(mailbox: str, folder: str) -> tuple[int, int]:
        url: str | None = f"{loaded.base_url}/v1.0/users/{mailbox}/mailFolders/{folder}/messages/delta"
        params: dict[str, str] | None = {"$select": ",".join(("id", *MESSAGE_FIELDS))}
        items = pages = 0
        while url:
            with gates[mailbox]:
                response = sessions[mailbox].get(url, params=params, headers=headers, timeout=30)
            response.raise_for_status()
            page = response.json()
            items, pages = items + len(page["value"]), pages + 1
            url, params = page.get("@odata.nextLink"), None
        return items, pages

    chains = [(mailbox, folder) for mailbox in loaded.folders for folder in FOLDERS]
    with ThreadPoolExecutor(min(workers, len(chains))) as pool:
        results = list(pool.map(lambda c: chain(*c), chains))
    for session in sessions.values():
        session.close()
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "messages": sum(r[0] for r in results), "pages": sum(r[1] for r in results)}


def _session(ca_file: str) -> requests.Session:
    """REQUESTS_CA_BUNDLE would override a session's own `verify`; this one trusts the fake's CA."""
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_file
    return session


# --- bounds and the report ---------------------------------------------------------------------------


def chain_pages(folders: dict[str, dict[str, int]], page_size: int) -> dict[str, list[int]]:
    """Pages each chain needs, per mailbox: an empty folder still takes one request for its deltaLink."""
    size = min(page_size, GRAPH_PAGE_MAX)
    return {mailbox: [max(1, math.ceil(n / size)) for n in counts.values()] for mailbox, counts in folders.items()}


def bounds(pages: dict[str, list[int]], latency: float, concurrency: int, workers: int) -> dict[str, float]:
    """The time below which no client can finish, under the limits as the goal states them and
    under those limits with each chain's pages read one after another."""
    needed = sum(sum(chains) for chains in pages.values())
    chains = sum(len(chains) for chains in pages.values())
    slowest = max(latency * max(max(c), sum(c) / min(concurrency, len(c))) for c in pages.values())
    threads = needed * latency / min(workers, chains, concurrency * len(pages))
    return {"requests_needed": needed, "chains": chains,
            "documented_bound_seconds": round(needed * latency / concurrency, 3),
            "slowest_mailbox_bound_seconds": round(slowest, 3), "threads_bound_seconds": round(threads, 3),
            "chain_bound_seconds": round(max(slowest, threads), 3)}


def settings_for(loaded: Loaded, folder: Path, args: argparse.Namespace) -> GraphSettings:
    """Mail only: the goal is about messages, and contacts and the directory would add chains the
    message counts do not explain."""
    return graph_source(TenantView.of(loaded), folder, name="bench", mailboxes=list(loaded.folders), read=["mail"],  # type: ignore[arg-type]
                        page_size=args.page_size, workers=args.workers, mailbox_concurrency=min(args.concurrency, 4))


def measure(fake: Fake, args: argparse.Namespace) -> dict[str, Any]:
    """Full sync, incremental sync, then the baseline, each between two snapshots of the fake's counters."""
    loaded = fake.loaded
    with tempfile.TemporaryDirectory(prefix="custody-bench-graph-") as folder:
        settings = settings_for(loaded, Path(folder), args)
        rss_before = peak_rss_mb()
        first = fake.counters()
        with profiled(args.profile):
            full = consume(GraphConnector(settings, batch_size=args.page_size).sync(None))
        second = fake.counters()
        again = consume(GraphConnector(settings, batch_size=args.page_size).sync(full.cursor))
        third = fake.counters()
    rss_custody = peak_rss_mb()
    bare = bare_sync(loaded, args.page_size, settings.workers, settings.mailbox_concurrency)
    fourth = fake.counters()
    full_counts, again_counts = difference(second, first), difference(third, second)
    bare_counts = difference(fourth, third)
    limits = bounds(chain_pages(loaded.folders, args.page_size), args.latency, args.concurrency, settings.workers)
    loaded_total = sum(sum(counts.values()) for counts in loaded.folders.values())
    return {
        "source": loaded.source,
        **({"note": f"Enron corpus not found at {ENRON}; generated messages instead"}
           if loaded.source == "synthetic" and not args.synthetic else {}),
        "messages": loaded_total, "mailboxes": len(loaded.folders), "chains": limits["chains"],
        "latency_seconds": args.latency, "concurrency": args.concurrency, "page_size": args.page_size,
        "workers": settings.workers, "load_seconds": round(loaded.load_seconds, 2),
        "full_sync": {
            "seconds": round(full.seconds, 3), "messages_per_second": round(full.records / full.seconds),
            "records": full.records, "skipped": full.skipped, "pages": full.batches,
            "requests": full_counts["requests"], "throttled_429": full_counts["throttled_429"],
            "token_requests": full_counts["token_requests"], "client_cpu_seconds": round(full.cpu_seconds, 2),
            "fake_cpu_seconds": full_counts["fake_cpu_seconds"],
            "max_concurrency_seen_per_mailbox": max(second["max_concurrency"].values(), default=0),
        },
        "incremental_sync": {
            "seconds": round(again.seconds, 3), "records": again.records, "requests": again_counts["requests"],
            "requests_per_folder": round(again_counts["requests"] / limits["chains"], 3),
            "throttled_429": again_counts["throttled_429"],
        },
        "baseline_bare_requests": {
            "seconds": round(bare["seconds"], 3), "messages_per_second": round(bare["messages"] / bare["seconds"]),
            "messages": bare["messages"], "pages": bare["pages"], "requests": bare_counts["requests"],
            "throttled_429": bare_counts["throttled_429"], "client_cpu_seconds": round(bare["cpu_seconds"], 2),
            "fake_cpu_seconds": bare_counts["fake_cpu_seconds"],
        },
        **{k: v for k, v in limits.items() if k != "chains"},
        "ratio_to_limit": ratio(full.seconds, limits["documented_bound_seconds"]),
        "ratio_to_chain_bound": ratio(full.seconds, limits["chain_bound_seconds"]),
        "baseline_ratio_to_limit": ratio(bare["seconds"], limits["documented_bound_seconds"]),
        "custody_over_baseline": round(full.seconds / bare["seconds"], 3),
        "goal_met": full.seconds <= 1.2 * limits["documented_bound_seconds"]
        and again_counts["requests"] == limits["chains"],
        "rss_before_sync_mb": rss_before, "peak_rss_mb": rss_custody,
        "cpu_count": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2),
        "notes": NOTES,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake waits before each mailbox answer")
    parser.add_argument("--concurrency", type=int, default=4, help="the fake's per-mailbox limit of requests in flight")
    parser.add_argument("--mailboxes", type=int, help="default: one Enron user's mail each, until --messages is reached")
    parser.add_argument("--page-size", type=int, default=500, help="the connector's page_size (and batch_size)")
    parser.add_argument("--workers", type=int, default=GraphSettings.model_fields["workers"].default,
                        help="the connector's workers: delta chains read at once")
    parser.add_argument("--synthetic", action="store_true", help="generated messages instead of the Enron corpus")
    parser.add_argument("--profile", type=Path, help="write a cProfile (all threads) of the full sync here")
    args = parser.parse_args()
    if args.messages < 1 or (args.mailboxes is not None and args.mailboxes < 1):
        parser.error("--messages and --mailboxes must be positive")
    fake = Fake(serve_fake, Options(args.messages, args.mailboxes, args.latency, args.concurrency, args.synthetic))
    gc.freeze()  # as the custody command does once its modules are loaded
    try:
        report = measure(fake, args)
    finally:
        fake.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
