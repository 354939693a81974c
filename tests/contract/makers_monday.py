"""Contract-suite maker for the monday.com source: a fresh sandbox and a source pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.base import Source
from connectors.model import Window
from connectors.monday import MondayConfig, MondaySource
from connectors.sandbox.dataset import Dataset
from connectors.sandbox.monday import MondaySandbox
from tests.fakes import FakeClock, no_sleep


def monday_source(sandbox: MondaySandbox, limiter: RateLimiter | None = None, **config: Any) -> MondaySource:
    token = config.pop("token", sandbox.token)
    settings = MondayConfig(token=SecretStr(token), base_url=sandbox.base_url, **config)
    return MondaySource(settings, limiter=limiter or RateLimiter(1_000_000, clock=FakeClock()), sleep=no_sleep)


@contextmanager
def make_monday(dataset: Dataset, **config: Any) -> Iterator[tuple[Source, Callable[[Window], int]]]:
    """A monday source on a fresh sandbox, and the sandbox's own count of stopped sessions in a window."""
    zone = str(config.get("timezone", "UTC"))
    with MondaySandbox(dataset) as sandbox, monday_source(sandbox, **config) as source:
        yield source, lambda w: len(sandbox.session_ids(w.start, w.end, timezone=zone))


MAKERS = {"monday": make_monday}
