"""Contract-suite maker for the Clockify source: a fresh emulator and a workspace-owner source pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.base import Source
from connectors.clockify import ClockifyConfig, ClockifySource
from connectors.clockify.config import REQUESTS_PER_MINUTE
from connectors.model import Window
from connectors.sandbox.clockify import ClockifySandbox
from connectors.sandbox.dataset import Dataset
from tests.fakes import FakeClock, no_sleep


def clockify_source(sandbox: ClockifySandbox, clock: FakeClock, **config: object) -> ClockifySource:
    """A source on the emulator, paced at the default rate on the emulator's fake clock."""
    token = config.pop("token", sandbox.token)
    settings = ClockifyConfig(
        token=SecretStr(str(token)),
        base_url=sandbox.api_url,
        reports_url=sandbox.reports_url,
        **config,
    )
    return ClockifySource(settings, limiter=RateLimiter(REQUESTS_PER_MINUTE, clock=clock), sleep=no_sleep, clock=clock)


@contextmanager
def make_clockify(dataset: Dataset, **config: object) -> Iterator[tuple[Source, Callable[[Window], int]]]:
    clock = FakeClock()
    # A paid plan: the suite's small pages would spend the Free plan's 30 reports an hour.
    with (
        ClockifySandbox(dataset, clock=clock, plan="paid") as sandbox,
        clockify_source(sandbox, clock, plan="paid", **config) as source,
    ):
        yield source, lambda w: len(sandbox.entry_ids(w.start, w.end))


MAKERS = {"clockify": make_clockify}
