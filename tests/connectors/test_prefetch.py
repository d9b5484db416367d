"""Batches computed ahead in a thread arrive in order, with errors where they happened."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from connectors.prefetch import prefetched


def test_items_arrive_in_order_and_the_producer_runs_ahead() -> None:
    working_on_third = threading.Event()

    def numbers() -> Iterator[int]:
        for n in range(10):
            if n == 2:
                working_on_third.set()
            yield n

    items = prefetched(numbers, depth=2)
    assert next(items) == 0
    assert working_on_third.wait(timeout=10)
    assert list(items) == list(range(1, 10))


def test_a_producer_error_is_raised_after_the_items_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionResetError("server went away")

    seen = []
    with pytest.raises(ConnectionResetError, match="server went away"):
        for n in prefetched(failing):
            seen.append(n)
    assert seen == [1, 2]


def test_closing_early_stops_the_producer_and_runs_its_cleanup_in_its_thread() -> None:
    cleanup_threads: list[str] = []

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            cleanup_threads.append(threading.current_thread().name)

    items = prefetched(endless, depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()  # type: ignore[attr-defined]
    assert cleanup_threads == ["connector-prefetch"]
