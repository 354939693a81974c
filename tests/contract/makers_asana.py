"""Contract-suite maker for the Asana source: a fresh sandbox and a source pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from connectors.base import Source
from connectors.model import Window
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.dataset import Dataset

from .conftest import asana_source


@contextmanager
def make_asana(dataset: Dataset, **config: object) -> Iterator[tuple[Source, Callable[[Window], int]]]:
    """An Asana source on a fresh sandbox, and the sandbox's own count of entries in a window."""
    with AsanaSandbox(dataset) as sandbox, asana_source(sandbox, **config) as source:
        yield source, lambda w: len(sandbox.entry_gids(w.start, w.end))


MAKERS = {"asana": make_asana}
