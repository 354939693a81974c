"""Contract-suite maker for the ClickUp source: a fresh sandbox and a source pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.base import Source
from connectors.clickup import ClickUpConfig, ClickUpSource
from connectors.model import Window
from connectors.sandbox.clickup import ClickUpSandbox
from connectors.sandbox.dataset import Dataset
from tests.fakes import FakeClock, no_sleep


def clickup_source(sandbox: ClickUpSandbox, **config: object) -> ClickUpSource:
    """A source on the sandbox whose limiter never really sleeps."""
    token = config.pop("token", sandbox.token)
    settings = ClickUpConfig(token=SecretStr(str(token)), base_url=sandbox.base_url, **config)
    return ClickUpSource(settings, limiter=RateLimiter(1_000_000, clock=FakeClock()), sleep=no_sleep)


@contextmanager
def make_clickup(dataset: Dataset, **config: object) -> Iterator[tuple[Source, Callable[[Window], int]]]:
    """A ClickUp source on a fresh sandbox, and the sandbox's own count of entries in a window.

    ClickUp does not page time entries; the suite's ``page_size`` becomes the sandbox's task page
    size, so paging is still exercised where ClickUp pages (the team task listing).
    """
    page_size = config.pop("page_size", None)
    task_page_size = int(str(page_size)) if page_size is not None else 100
    with (
        ClickUpSandbox(dataset, task_page_size=task_page_size) as sandbox,
        clickup_source(sandbox, **config) as source,
    ):
        yield source, lambda w: len(sandbox.entry_ids(w.start, w.end))


MAKERS = {"clickup": make_clickup}
