"""Contract-suite maker for the Toggl Track source: a fresh emulator and a workspace-admin source pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.base import Source
from connectors.model import Window
from connectors.sandbox.dataset import Dataset
from connectors.sandbox.toggl import TogglSandbox
from connectors.toggl import TogglConfig, TogglSource
from connectors.toggl.config import REQUESTS_PER_MINUTE
from tests.fakes import FakeClock, no_sleep


def toggl_source(sandbox: TogglSandbox, clock: FakeClock, **config: object) -> TogglSource:
    """A source on the emulator, paced at Toggl's one request a second on the emulator's fake clock."""
    token = config.pop("token", sandbox.token)
    config.setdefault("workspace_ids", [sandbox.workspace_id])
    config.setdefault("plan", "premium")
    settings = TogglConfig(token=SecretStr(str(token)), base_url=sandbox.base_url, **config)
    limiter = RateLimiter(REQUESTS_PER_MINUTE, clock=clock)
    return TogglSource(settings, limiter=limiter, sleep=no_sleep, clock=clock)


@contextmanager
def make_toggl(dataset: Dataset, **config: object) -> Iterator[tuple[Source, Callable[[Window], int]]]:
    clock = FakeClock()
    with TogglSandbox(dataset, clock=clock) as sandbox, toggl_source(sandbox, clock, **config) as source:
        yield source, lambda w: len(sandbox.entry_ids(w.start, w.end))


MAKERS = {"toggl": make_toggl}
