"""What the cloud-connector benchmarks (graph_sync.py, gmail_sync.py) share: the Enron mailboxes
spread over a tenant's users, the fake served from a child process, a sync consumed the way the
engine consumes it, a cProfile across threads, and the small numbers of the report."""

from __future__ import annotations

import cProfile
import io
import multiprocessing
import pstats
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
ENRON = PROJECT.parent / "shared" / "corpus" / "enron" / "maildir"


@dataclass
class SyncRun:
    """One sync as the caller saw it."""

    seconds: float
    cpu_seconds: float
    batches: int
    records: int
    skipped: int
    cursor: dict[str, Any] = field(default_factory=dict)


def mailbox_plan(available: list[tuple[str, int]], total: int, mailboxes: int | None,
                 domain: str) -> list[tuple[str, str, int]]:
    """(address, source user, messages) per mailbox. By default each mailbox is one user's whole mail,
    the users taken in turn (again, as copies, once all are used) until `total` is reached; with
    `mailboxes` the total is split evenly and each mailbox repeats its user's mail as needed."""
    plan: list[tuple[str, str, int]] = []
    remaining, index = total, 0
    while remaining > 0 and (mailboxes is None or index < mailboxes):
        user, count = available[index % len(available)]
        copy = index // len(available)
        take = min(count, remaining) if mailboxes is None else total // mailboxes + (index < total % mailboxes)
        plan.append((f"{user}-{copy}@{domain}" if copy else f"{user}@{domain}", user, take))
        remaining -= take
        index += 1
    return plan


class Fake:
    """This process's handle on a child serving a fake: `serve(connection, options)` sends what it
    loaded first, then answers each command until it receives "stop"."""

    def __init__(self, serve: Callable[[Connection, Any], None], options: Any) -> None:
        context = multiprocessing.get_context("fork")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(target=serve, args=(child_end, options), daemon=True)
        self._process.start()
        self.loaded: Any = self._connection.recv()

    def ask(self, command: str) -> Any:
        self._connection.send(command)
        return self._connection.recv()

    def counters(self) -> dict[str, Any]:
        found: dict[str, Any] = self.ask("counters")
        return found

    def close(self) -> None:
        self._connection.send("stop")
        self._process.join(timeout=30)


def consume(batches: Iterator[Any]) -> SyncRun:
    """Counts what a sync yields, keeping only the last cursor: the engine stores each batch and
    drops it, so holding every record would misstate the peak RSS."""
    started, cpu = time.perf_counter(), time.process_time()
    run = SyncRun(0.0, 0.0, 0, 0, 0)
    for batch in batches:
        run.batches += 1
        run.records += len(batch.records)
        run.skipped += len(batch.skipped)
        run.cursor = batch.cursor
    run.seconds, run.cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    return run


@contextmanager
def profiled(path: Path | None) -> Iterator[None]:
    """cProfile of every thread started inside the block (the connector reads in a thread pool,
    which a plain cProfile of the main thread would not see), merged into one pstats file. Each
    thread is timed by its own CPU time: wall time would charge every thread for the GIL waits and
    network waits of all of them."""
    if path is None:
        yield
        return
    profiles: list[cProfile.Profile] = []

    def start(*_: object) -> None:
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()

    main = cProfile.Profile(time.thread_time)
    threading.setprofile(start)
    main.enable()
    try:
        yield
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
        for profile in profiles:
            profile.create_stats()
        stats = pstats.Stats(main)
        for profile in profiles:
            stats.add(profile)
        stats.dump_stats(path)
        text = io.StringIO()
        pstats.Stats(str(path), stream=text).sort_stats("tottime").print_stats(25)
        print(text.getvalue(), file=sys.stderr)


def ratio(seconds: float, bound: float) -> float | None:
    """None where the bound is zero (--latency 0): no ratio to a limit that does not exist."""
    return round(seconds / bound, 3) if bound > 0 else None


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
