"""Prefetching keeps order, surfaces the producer's error, and stops the producer when the consumer stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from sync.run.prefetch import prefetched_batches


def test_batches_arrive_in_order_and_complete() -> None:
    batches = list(prefetched_batches(range(1003), 100, depth=2))
    assert [len(b) for b in batches] == [100] * 10 + [3]
    assert [x for b in batches for x in b] == list(range(1003))


def test_producer_errors_are_raised_to_the_consumer() -> None:
    def items() -> Iterator[int]:
        yield from range(250)
        raise RuntimeError("vendor went away")

    seen: list[int] = []
    with pytest.raises(RuntimeError, match="vendor went away"):
        for batch in prefetched_batches(items(), 100):
            seen.extend(batch)
    assert seen == list(range(200))


def test_consumer_stopping_early_stops_the_producer() -> None:
    produced = 0

    def endless() -> Iterator[int]:
        nonlocal produced
        while True:
            produced += 1
            yield produced

    before = threading.active_count()
    for batch in prefetched_batches(endless(), 10, depth=2):
        assert len(batch) == 10
        break
    assert threading.active_count() == before
    assert produced < 10 * 6  # at most a few batches ahead
