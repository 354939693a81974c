"""Contract-suite maker for the Harvest source: a fresh emulator and an Administrator's source pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.base import Source
from connectors.harvest import HarvestConfig, HarvestSource
from connectors.model import Window
from connectors.sandbox.dataset import Dataset
from connectors.sandbox.harvest import HarvestSandbox
from tests.fakes import FakeClock, no_sleep


def harvest_source(sandbox: HarvestSandbox, **config: object) -> HarvestSource:
    """A source on the emulator whose limiter never really sleeps."""
    token = config.pop("token", sandbox.token)
    page_size = config.pop("page_size", None)
    if page_size is not None:
        config["per_page"] = page_size
    settings = HarvestConfig(
        token=SecretStr(str(token)),
        account_id=sandbox.account_id,
        contact_email="ops@example.com",
        base_url=sandbox.base_url,
        **config,
    )
    return HarvestSource(settings, limiter=RateLimiter(1_000_000, clock=FakeClock()), sleep=no_sleep)


@contextmanager
def make_harvest(dataset: Dataset, **config: object) -> Iterator[tuple[Source, Callable[[Window], int]]]:
    with HarvestSandbox(dataset) as sandbox, harvest_source(sandbox, **config) as source:
        yield source, lambda w: len(sandbox.entry_ids(w.start, w.end))


MAKERS = {"harvest": make_harvest}
