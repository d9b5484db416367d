"""A sync collects garbage less often, and leaves the collector as it found it."""

from __future__ import annotations

import gc
import threading

import pytest

from daemon.sync.collection import SYNC_THRESHOLDS, fewer_collections


def test_the_collector_runs_less_often_while_a_sync_runs_and_as_before_after_it() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold() == SYNC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_overlapping_syncs_restore_the_collector_only_when_the_last_ends() -> None:
    before = gc.get_threshold()
    first_started, second_ended = threading.Event(), threading.Event()

    def second_sync() -> None:
        first_started.wait()
        with fewer_collections():
            pass
        second_ended.set()

    other = threading.Thread(target=second_sync)
    other.start()
    with fewer_collections():
        first_started.set()
        second_ended.wait()
        assert gc.get_threshold() == SYNC_THRESHOLDS
    other.join()
    assert gc.get_threshold() == before


def test_a_failed_sync_restores_the_collector_too() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("connection lost")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
