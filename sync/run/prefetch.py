"""Fetch the next pages in a background thread while the ledger writes the current batch."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

from sync.store.ledger import batched

T = TypeVar("T")

_DONE = object()


def prefetched_batches(items: Iterable[T], size: int, *, depth: int = 4) -> Iterator[list[T]]:
    """Batches of ``items`` produced by a worker thread, at most ``depth`` batches ahead.

    Network waits (rate limits, latency) and database writes overlap instead of adding up; the
    bounded queue keeps memory flat however large the window is. An error in the producer is
    re-raised here; if the consumer stops early, the producer is told to stop and is joined.
    """
    channel: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                channel.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batched(items, size):
                if not put(batch):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    # The producer runs the source's fetch: its log lines carry the run id bound in this context.
    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(produce,), name="hourbridge-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = channel.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()
