"""A report's chunks read by a thread a little ahead of the writer that formats them.

Reading a chunk waits mostly on the database, formatting it is Python's own work: overlapped, a
streamed report on PostgreSQL took about the time of the longer of the two instead of their sum.
Memory stays bounded: the reader stops `depth` chunks ahead until the writer catches up.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from queue import Full, Queue
from typing import TypeVar

T = TypeVar("T")
_POLL_SECONDS = 0.1


class _End:
    """What the reader leaves last, always, unless the caller has gone: nothing, or the error that
    stopped it."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def read_ahead(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """`items` in order, read in a thread at most `depth` ahead of the caller. The reader's error is
    raised to the caller; a caller that stops early stops the reader and closes `items`, so a
    database connection it holds goes back to its pool."""
    queue: Queue[T | _End] = Queue(maxsize=depth)
    stopped = threading.Event()
    reader = threading.Thread(target=_read_into, args=(iter(items), queue, stopped), name="report-read-ahead",
                              daemon=True)
    reader.start()
    try:
        while True:
            item = queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stopped.set()
        reader.join()


def _read_into(items: Iterator[T], queue: Queue[T | _End], stopped: threading.Event) -> None:
    try:
        for item in items:
            if not _put(queue, item, stopped):
                return
        _put(queue, _End(), stopped)
    except BaseException as error:
        _put(queue, _End(error), stopped)
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def _put(queue: Queue[T | _End], item: T | _End, stopped: threading.Event) -> bool:
    """Waits for room until the caller has gone; whether the item went in."""
    while not stopped.is_set():
        try:
            queue.put(item, timeout=_POLL_SECONDS)
            return True
        except Full:
            continue
    return False
