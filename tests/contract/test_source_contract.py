"""The contract every source passes: UTC, non-negative, inside the window, unique ids, stable hashes, clear 401."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, date
from pathlib import Path

import pytest
from pydantic import BaseModel

from connectors.base import Source, SourcePlugin, load_plugins, register_source, registered_sources, unregister
from connectors.errors import ConfigError
from connectors.model import Window
from connectors.sandbox.dataset import Dataset

SourceMaker = Callable[..., AbstractContextManager[tuple[Source, Callable[[Window], int]]]]


def _discover() -> dict[str, SourceMaker]:
    """Every ``makers_*.py`` beside this file contributes ``MAKERS``: one entry per source."""
    found: dict[str, SourceMaker] = {}
    for path in sorted(Path(__file__).parent.glob("makers_*.py")):
        module = importlib.import_module(f"{__package__}.{path.stem}")
        found.update(module.MAKERS)
    return found


SOURCES = _discover()


def sources_without_maker(makers: dict[str, SourceMaker]) -> list[str]:
    """Registered sources (built-ins and installed plug-ins) that the contract suite does not exercise."""
    load_plugins()
    return [name for name in registered_sources() if name not in makers]


def test_every_registered_source_is_in_the_suite() -> None:
    assert sources_without_maker(SOURCES) == []
    assert {"asana", "clickup", "monday"} <= set(SOURCES)


def test_the_guard_reports_a_registered_source_without_a_maker() -> None:
    class Throwaway(BaseModel):
        pass

    register_source(SourcePlugin(name="throwaway", label="Throwaway", factory=lambda c: c, config=Throwaway))
    try:
        assert sources_without_maker(SOURCES) == ["throwaway"]
    finally:
        unregister("throwaway")
    assert sources_without_maker(SOURCES) == []


@pytest.fixture(params=sorted(SOURCES))
def make(request: pytest.FixtureRequest) -> SourceMaker:
    return SOURCES[request.param]


def window_of(dataset: Dataset) -> Window:
    return Window(dataset.start, dataset.anchor)


def test_entries_are_utc_non_negative_inside_the_window_and_unique(make: SourceMaker, dataset: Dataset) -> None:
    window = Window(dataset.start, date(2026, 11, 10))
    with make(dataset) as (source, expected):
        entries = [e for scope in source.scopes() for e in source.fetch(scope, window)]
    assert len(entries) == expected(window) > 0
    assert len({e.key for e in entries}) == len(entries)
    for entry in entries:
        assert entry.duration_seconds >= 0
        assert entry.work_date in window
        for stamp in (entry.started_at, entry.ended_at, entry.recorded_at):
            assert stamp is None or stamp.tzinfo == UTC
        assert entry.person.id


def test_same_window_twice_gives_the_same_hashes(make: SourceMaker, dataset: Dataset) -> None:
    window = window_of(dataset)
    with make(dataset) as (source, _):
        scopes = list(source.scopes())
        first = {e.key: e.content_hash for s in scopes for e in source.fetch(s, window)}
        second = {e.key: e.content_hash for s in scopes for e in source.fetch(s, window)}
    assert first == second


def test_paging_terminates_with_small_pages(make: SourceMaker, dataset: Dataset) -> None:
    window = window_of(dataset)
    with make(dataset, page_size=7) as (source, expected):
        entries = [e for s in source.scopes() for e in source.fetch(s, window)]
    assert len(entries) == expected(window)


def test_refused_credential_is_an_admin_readable_config_error(make: SourceMaker, dataset: Dataset) -> None:
    with make(dataset, token="wrong-token") as (source, _), pytest.raises(ConfigError) as info:
        source.check()
    assert "TOKEN" in info.value.message
    assert "wrong-token" not in info.value.message


def test_empty_window_yields_nothing(make: SourceMaker, dataset: Dataset) -> None:
    far = Window(date(2020, 1, 1), date(2020, 1, 31))
    with make(dataset) as (source, _):
        assert [e for s in source.scopes() for e in source.fetch(s, far)] == []
