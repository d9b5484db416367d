"""Run a connector's batch iterator a few batches ahead in a thread.

While the sync engine interprets and stores one batch, the next is already on its way from the
server: network waits overlap with the registry's work instead of adding to it. Batches still
arrive in order, so each batch's cursor stays valid right after that batch.

Parsing stays in this process: worker processes started with `spawn` re-import the caller's
main module, which runs any unguarded script again, and `fork` from a threaded daemon can deadlock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from queue import Empty, Full, Queue
from typing import Any, TypeVar

T = TypeVar("T")
_POLL_SECONDS = 0.1


class _Control:
    """What the consumer tells the producer thread and learns from it; shared without a reference
    back to the iterator, so dropping the iterator still stops the thread at once."""

    def __init__(self) -> None:
        self.finishing = threading.Event()
        self.cut = False


class Prefetched(Iterator[T]):
    """An iterator over what `produce()` yields, computed up to `depth` items ahead in a background
    thread, that can be told to read no further (`finish`).

    An exception in the producer is raised here, at the position it happened; closing this
    iterator early stops the producer and closes its iterator in its own thread.
    """

    def __init__(self, produce: Callable[[], Iterator[T]], depth: int = 2) -> None:
        self._control = _Control()
        self._items = _prefetch(produce, depth, self._control)

    def __iter__(self) -> Prefetched[T]:
        return self

    def __next__(self) -> T:
        return next(self._items)

    def close(self) -> None:
        self._items.close()

    def finish(self) -> None:
        """Start producing nothing new, yet still yield what was read ahead or is being read: a
        batch fetched and then dropped would be fetched again by whoever continues from the last
        cursor stored."""
        self._control.finishing.set()

    @property
    def cut(self) -> bool:
        """Whether `finish` ended the items before the producer's own end."""
        return self._control.cut


def prefetched(produce: Callable[[], Iterator[T]], depth: int = 2) -> Prefetched[T]:
    """Yield what `produce()` yields, computed up to `depth` items ahead in a background thread."""
    return Prefetched(produce, depth)


def _prefetch(produce: Callable[[], Iterator[T]], depth: int, control: _Control) -> Iterator[T]:
    queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def offer(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                queue.put((kind, value), timeout=_POLL_SECONDS)
                return True
            except Full:
                continue
        return False

    def run() -> None:
        items = produce()
        try:
            while not control.finishing.is_set():
                try:
                    item = next(items)
                except StopIteration:
                    offer("done", None)
                    return
                if not offer("item", item):
                    return
            offer("cut", None)
        except BaseException as error:  # handed to the consumer, who decides what it means
            offer("error", error)
        finally:
            items.close()  # type: ignore[attr-defined]

    worker = threading.Thread(target=run, name="connector-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            try:
                kind, value = queue.get(timeout=_POLL_SECONDS)
            except Empty:
                if not worker.is_alive() and queue.empty():
                    raise RuntimeError("connector prefetch thread ended without a result") from None
                continue
            if kind == "cut":
                control.cut = True
                return
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join()
