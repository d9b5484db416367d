"""Many page chains of one source read at once: each mailbox folder or address book of a cloud
tenant is a chain of pages (delta links, history or sync tokens) that must be read in order, but
different chains can be read side by side.

Chains run in worker threads; `read_chains` yields their pages as they come, and the source
yields each with a cursor holding every chain's position as of the pages already yielded, so a
stored batch is resumable whatever order the chains finished in. A chain that fails is a counted
skip and keeps its position for the next sync; the source fails only when every chain did.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from connectors.errors import AuthError, ConnectorError, PermanentError, TransientError
from connectors.records import Record, Skipped

log = logging.getLogger("custody.chains")
_SEVERITY: tuple[type[ConnectorError], ...] = (AuthError, PermanentError, TransientError)


@dataclass
class Page:
    """One page of a chain: its records, and the position that resumes the chain after it. The
    page named `""` carries the skips of chains that failed."""

    chain: str
    records: list[Record] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    position: Any = None
    last: bool = False


@dataclass
class _Failed:
    chain: str
    error: Exception


def read_chains(chains: list[str], read: Callable[[str], Iterator[Page]], workers: int, source: str) -> Iterator[Page]:
    """Every chain's pages, `workers` chains at a time; closing the iterator stops the workers at
    their next page."""
    if not chains:
        return
    pages: queue.Queue[Page | _Failed] = queue.Queue(maxsize=workers)
    stop = threading.Event()
    failures: list[_Failed] = []
    pool = ThreadPoolExecutor(min(workers, len(chains)), thread_name_prefix=f"chains-{source}")
    try:
        for chain in chains:
            pool.submit(_run, chain, read, pages, stop)
        running = len(chains)
        while running:
            item = pages.get()
            if isinstance(item, _Failed):
                running -= 1
                failures.append(item)
                continue
            running -= item.last
            yield item
    finally:
        stop.set()
        _drain(pages)
        pool.shutdown(wait=False, cancel_futures=True)
    if failures:
        yield _failed(failures, len(chains), source)


def _failed(failures: list[_Failed], chains: int, source: str) -> Page:
    """Skips naming each failed chain, or, when nothing could be read, the gravest failure."""
    for failed in failures:
        log.warning("source %s: %s failed: %s", source, failed.chain, failed.error)
    if len(failures) == chains:
        raise min(failures, key=lambda f: _rank(f.error)).error
    return Page("", skipped=[Skipped(f.chain, f"{type(f.error).__name__}: {f.error}") for f in failures])


def _run(chain: str, read: Callable[[str], Iterator[Page]], pages: queue.Queue[Page | _Failed], stop: threading.Event) -> None:
    try:
        for page in read(chain):
            if not _offer(pages, page, stop):
                return
    except Exception as error:  # one chain's failure is reported, never lost in the pool
        _offer(pages, _Failed(chain, error), stop)


def _offer(pages: queue.Queue[Page | _Failed], item: Page | _Failed, stop: threading.Event) -> bool:
    """Put `item` once there is room, unless the reader stopped listening meanwhile."""
    while not stop.is_set():
        try:
            pages.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def _drain(pages: queue.Queue[Page | _Failed]) -> None:
    while True:
        try:
            pages.get_nowait()
        except queue.Empty:
            return


def _rank(error: Exception) -> int:
    return next((i for i, kind in enumerate(_SEVERITY) if isinstance(error, kind)), len(_SEVERITY))
