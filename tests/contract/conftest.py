"""Fixtures for the source contract suite: a running sandbox and a source pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.asana import AsanaConfig, AsanaSource
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.dataset import Dataset, generate_dataset
from tests.fakes import FakeClock, no_sleep

ANCHOR = date(2026, 11, 20)


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return generate_dataset(7, anchor=ANCHOR, days=30)


@pytest.fixture
def asana_sandbox(dataset: Dataset) -> Iterator[AsanaSandbox]:
    with AsanaSandbox(dataset) as sandbox:
        yield sandbox


def asana_source(sandbox: AsanaSandbox, **config: Any) -> AsanaSource:
    settings = AsanaConfig(token=SecretStr(config.pop("token", sandbox.token)), base_url=sandbox.base_url, **config)
    limiter = RateLimiter(1_000_000, clock=FakeClock())
    return AsanaSource(settings, limiter=limiter, sleep=no_sleep)
