"""Run a connector's batch iterator a few batches ahead in a thread when the network makes it wait.

While the sync engine interprets and stores one batch, the next is already on its way from the
server: network waits overlap with the registry's work instead of adding to it. Batches still
arrive in order, so each batch's cursor stays valid right after that batch. A server that answers
at once (on this machine, or near it) leaves nothing to overlap, and a second thread contending
for the interpreter then costs a tenth of a sync's CPU (bench/imap_sync.py): such a producer is read
in the consumer's own thread.

Parsing stays in this process: worker processes started with `spawn` re-import the caller's
main module, which runs any unguarded script again, and `fork` from a threaded daemon can deadlock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from queue import Empty, Full, Queue
from typing import Any, TypeVar

T = TypeVar("T")
_POLL_SECONDS = 0.1
WAITING_SHARE = 0.5
MIN_WAIT_SECONDS = 0.002


class _Control:
    """What the consumer tells the producer thread and learns from it; shared without a reference
    back to the iterator, so dropping the iterator still stops the thread at once."""

    def __init__(self) -> None:
        self.finishing = threading.Event()
        self.cut = False


class Prefetched(Iterator[T]):
    """An iterator over what `produce()` yields that can be told to read no further (`finish`).

    Items are computed in the consumer's thread until one (past the first, which pays for
    connecting) kept the producer waiting on its server (`waits_on_its_server`). From then on they
    are computed up to `depth` items ahead in a background thread.
    An exception in the producer is raised here, at the position it happened; closing this
    iterator early stops the producer and closes its iterator, in the thread that runs it.
    """

    def __init__(self, produce: Callable[[], Iterator[T]], depth: int = 2) -> None:
        self._control = _Control()
        self._produce = produce
        self._depth = depth
        self._here: Iterator[T] | None = None
        self._ahead: _Ahead[T] | None = None
        self._read = 0
        self._ended = False

    def __iter__(self) -> Prefetched[T]:
        return self

    def __next__(self) -> T:
        if self._ahead is not None:
            return next(self._ahead)
        if self._ended:
            raise StopIteration
        if self._control.finishing.is_set():
            self._control.cut = self._ended = True
            self.close()
            raise StopIteration
        items = self._here = self._here or self._produce()
        started, working = time.perf_counter(), time.thread_time()
        try:
            item = next(items)
        except StopIteration:
            self._ended = True
            raise
        self._read += 1
        if self._read > 1 and waits_on_its_server(time.perf_counter() - started, time.thread_time() - working):
            self._ahead = _Ahead(items, self._depth, self._control)
        return item

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.close()
        elif self._here is not None:
            self._here.close()  # type: ignore[attr-defined]

    def finish(self) -> None:
        """Start producing nothing new, yet still yield what was read ahead or is being read: a
        batch fetched and then dropped would be fetched again by whoever continues from the last
        cursor stored."""
        self._control.finishing.set()

    @property
    def cut(self) -> bool:
        """Whether `finish` ended the items before the producer's own end."""
        return self._control.cut

    @property
    def ahead(self) -> bool:
        """Whether a background thread computes the items now."""
        return self._ahead is not None


def waits_on_its_server(took: float, worked: float) -> bool:
    """Whether computing an item that took `took` seconds, `worked` of them on this thread's CPU,
    was mostly waiting: for more than WAITING_SHARE of its time and at least MIN_WAIT_SECONDS,
    less than which is not worth a thread to overlap."""
    waited = took - worked
    return waited >= MIN_WAIT_SECONDS and waited > took * WAITING_SHARE


def prefetched(produce: Callable[[], Iterator[T]], depth: int = 2) -> Prefetched[T]:
    """Yield what `produce()` yields, computed up to `depth` items ahead in a background thread
    once the producer is seen to wait on its server."""
    return Prefetched(produce, depth)


class _Ahead(Iterator[T]):
    """`items` computed up to `depth` ahead in a thread that starts at once; `close` stops it and
    closes `items` in that thread, whether or not anything was read."""

    def __init__(self, items: Iterator[T], depth: int, control: _Control) -> None:
        self._queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
        self._stop = threading.Event()
        self._control = control
        self._ended = False
        self._worker = threading.Thread(target=self._run, args=(items,), name="connector-prefetch", daemon=True)
        self._worker.start()

    def __next__(self) -> T:
        while not self._ended:
            try:
                kind, value = self._queue.get(timeout=_POLL_SECONDS)
            except Empty:
                if not self._worker.is_alive() and self._queue.empty():
                    self.close()
                    raise RuntimeError("connector prefetch thread ended without a result") from None
                continue
            if kind == "item":
                return value  # type: ignore[no-any-return]
            self.close()
            if kind == "cut":
                self._control.cut = True
            if kind == "error":
                raise value
        raise StopIteration

    def close(self) -> None:
        self._ended = True
        self._stop.set()
        self._worker.join()

    def _offer(self, kind: str, value: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put((kind, value), timeout=_POLL_SECONDS)
                return True
            except Full:
                continue
        return False

    def _run(self, items: Iterator[T]) -> None:
        try:
            while not self._control.finishing.is_set():
                try:
                    item = next(items)
                except StopIteration:
                    self._offer("done", None)
                    return
                if not self._offer("item", item):
                    return
            self._offer("cut", None)
        except BaseException as error:  # handed to the consumer, who decides what it means
            self._offer("error", error)
        finally:
            items.close()  # type: ignore[attr-defined]
