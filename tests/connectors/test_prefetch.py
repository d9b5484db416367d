"""Batches arrive in order, with errors where they happened; they are computed ahead in a thread
once the producer is seen waiting on its server, and in the consumer's own thread while it is not."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from connectors.prefetch import prefetched, waits_on_its_server

Producer = Callable[[], Iterator[int]]
NETWORK_SECONDS = 0.02


def numbers(count: int, waiting: bool, names: list[str] | None = None,
            reached: dict[int, threading.Event] | None = None) -> Producer:
    """`count` numbers; a waiting producer spends NETWORK_SECONDS blocked per number, as on a remote server."""
    def produce() -> Iterator[int]:
        for n in range(count):
            if reached and n in reached:
                reached[n].set()
            if waiting:
                threading.Event().wait(NETWORK_SECONDS)
            if names is not None:
                names.append(threading.current_thread().name)
            yield n
    return produce


def test_a_producer_waiting_on_its_server_runs_ahead_in_a_thread_after_its_second_item() -> None:
    names: list[str] = []
    fourth = threading.Event()
    items = prefetched(numbers(10, waiting=True, names=names, reached={3: fourth}), depth=2)
    assert [next(items), next(items)] == [0, 1]
    assert fourth.wait(timeout=30)
    assert list(items) == list(range(2, 10))
    consumer = threading.current_thread().name
    assert names == [consumer, consumer] + ["connector-prefetch"] * 8


def test_a_producer_that_only_computes_is_read_in_the_consumers_thread() -> None:
    names: list[str] = []
    items = prefetched(numbers(50, waiting=False, names=names))
    assert list(items) == list(range(50))
    assert set(names) == {threading.current_thread().name}
    assert not items.ahead


def test_the_first_item_alone_does_not_start_a_thread_as_it_pays_for_connecting() -> None:
    items = prefetched(numbers(3, waiting=True))
    assert next(items) == 0
    assert not items.ahead


@pytest.mark.parametrize("waiting", [True, False], ids=["remote", "local"])
def test_a_producer_error_is_raised_after_the_items_before_it(waiting: bool) -> None:
    def failing() -> Iterator[int]:
        yield from numbers(3, waiting)()
        raise ConnectionResetError("server went away")

    seen = []
    with pytest.raises(ConnectionResetError, match="server went away"):
        for n in prefetched(failing):
            seen.append(n)
    assert seen == [0, 1, 2]


@pytest.mark.parametrize("waiting", [True, False], ids=["remote", "local"])
def test_closing_early_stops_the_producer_and_runs_its_cleanup_in_its_thread(waiting: bool) -> None:
    cleanup_threads: list[str] = []

    def endless() -> Iterator[int]:
        try:
            yield from numbers(10**9, waiting)()
        finally:
            cleanup_threads.append(threading.current_thread().name)

    items = prefetched(endless, depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()
    assert cleanup_threads == ["connector-prefetch" if waiting else threading.current_thread().name]


@pytest.mark.parametrize("waiting", [True, False], ids=["remote", "local"])
def test_finishing_yields_what_was_read_ahead_and_says_the_items_were_cut(waiting: bool) -> None:
    items = prefetched(numbers(100, waiting), depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.finish()
    rest = list(items)
    assert rest == list(range(3, 3 + len(rest))) and len(rest) <= 3
    assert items.cut


def test_finishing_after_the_last_item_is_no_cut_when_the_producer_ended_first() -> None:
    items = prefetched(numbers(2, waiting=False))
    assert list(items) == [0, 1]
    items.finish()
    assert list(items) == [] and not items.cut


@pytest.mark.parametrize(("took", "worked", "waits"), [
    (0.100, 0.010, True), (0.100, 0.060, False), (0.001, 0.0, False), (0.004, 0.001, True), (0.0, 0.0, False),
])
def test_an_item_waited_on_its_server_when_most_of_its_time_and_some_milliseconds_were_not_work(
    took: float, worked: float, waits: bool
) -> None:
    assert waits_on_its_server(took, worked) is waits
