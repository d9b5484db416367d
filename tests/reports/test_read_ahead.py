"""A report's reader runs ahead of its writer in a thread: items arrive in order, the reader's
errors reach the writer, and a writer that stops early releases what the reader holds."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from reports.read_ahead import read_ahead


def test_items_arrive_in_order_read_by_another_thread() -> None:
    readers: set[str] = set()

    def numbers() -> Iterator[int]:
        for n in range(100):
            readers.add(threading.current_thread().name)
            yield n

    assert list(read_ahead(numbers())) == list(range(100))
    assert readers == {"report-read-ahead"}


def test_the_reader_stays_at_most_depth_items_ahead() -> None:
    read: list[int] = []
    never = threading.Event()

    def numbers() -> Iterator[int]:
        for n in range(10):
            read.append(n)
            yield n

    items = read_ahead(numbers(), depth=2)
    assert next(items) == 0

    while len(read) < 4:
        never.wait(0.01)
    never.wait(0.2)
    assert len(read) == 4, "one handed over, two queued, one waiting for room, and no more"
    assert list(items) == list(range(1, 10))


def test_the_readers_error_is_raised_to_the_writer_after_what_came_before() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise LookupError("registry went away")

    items = read_ahead(failing())
    assert next(items) == 1
    with pytest.raises(LookupError, match="registry went away"):
        next(items)


def test_a_writer_that_stops_early_stops_the_reader_and_closes_its_source() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        n = 0
        try:
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    items = read_ahead(endless())
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert closed.is_set(), "the source's finally ran (a connection goes back to its pool) before close returned"
    assert not any(t.name == "report-read-ahead" for t in threading.enumerate())
