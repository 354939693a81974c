"""Garbled answers (cut short, not JSON, HTML with 200, monday's internal error in a 200) are retried like a 5xx."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from connectors._ratelimit import RateLimiter
from connectors.asana import AsanaSource
from connectors.clickup import ClickUpConfig, ClickUpSource
from connectors.errors import GarbledAnswer
from connectors.model import TimeEntry, Window
from connectors.monday import MondaySource
from connectors.sandbox import asana as asana_routes
from connectors.sandbox import clickup as clickup_routes
from connectors.sandbox import monday as monday_routes
from connectors.sandbox._garbage import GarbageKind
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.clickup import ClickUpSandbox
from connectors.sandbox.dataset import Dataset
from connectors.sandbox.monday import MondaySandbox
from tests.fakes import FakeClock, no_sleep

from .conftest import asana_source
from .makers_clickup import clickup_source
from .makers_monday import monday_source

KINDS = list(GarbageKind)


def fetch_all(source: ClickUpSource | MondaySource | AsanaSource, window: Window) -> list[TimeEntry]:
    return [e for s in source.scopes() for e in source.fetch(s, window)]


# -- the emulators' garbage is what it says -----------------------------------------------------


def test_the_sandbox_spoils_exactly_the_next_answers_it_was_told_to(dataset: Dataset) -> None:
    with ClickUpSandbox(dataset) as sandbox:
        url = f"{sandbox.base_url}/v2/team"
        headers = {"Authorization": sandbox.token}
        whole = httpx.get(url, headers=headers)
        sandbox.garble_next(clickup_routes.TEAMS_LIST, 1, GarbageKind.TRUNCATED)
        sandbox.garble_next(clickup_routes.TEAMS_LIST, 1, "html")
        sandbox.garble_next(clickup_routes.TEAMS_LIST, 1, GarbageKind.NOT_JSON)
        cut, html, text, after = (httpx.get(url, headers=headers) for _ in range(4))
        assert sandbox.server.garbled_count == 3
        with pytest.raises(KeyError, match="unknown route"):
            sandbox.garble_next("no.such.route", 1, "html")
    assert all(r.status_code == 200 for r in (cut, html, text, after))
    assert whole.content.startswith(cut.content) and len(cut.content) == len(whole.content) // 2
    assert int(cut.headers["content-length"]) == len(cut.content)  # framing intact: only the JSON is cut
    assert html.headers["content-type"].startswith("text/html") and html.text.startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match="Expecting value"):
        text.json()
    assert after.json() == whole.json()


# -- one garbled answer costs one request, not the window ----------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=[k.value for k in KINDS])
def test_clickup_survives_one_garbled_answer(dataset: Dataset, kind: GarbageKind) -> None:
    with ClickUpSandbox(dataset) as sandbox, clickup_source(sandbox, concurrency=1) as source:
        sandbox.garble_next(clickup_routes.TIME_ENTRIES_LIST, 1, kind)
        entries = fetch_all(source, dataset.window)
        stats = source.stats()
        expected = sandbox.total_minutes(dataset.window.start, dataset.window.end) * 60
    assert sum(e.duration_seconds for e in entries) == expected
    assert stats["retries"] == 1


@pytest.mark.parametrize("kind", KINDS, ids=[k.value for k in KINDS])
def test_monday_survives_one_garbled_answer(dataset: Dataset, kind: GarbageKind) -> None:
    with MondaySandbox(dataset) as sandbox, monday_source(sandbox) as source:
        sandbox.garble_next(monday_routes.GRAPHQL, 1, kind)
        entries = fetch_all(source, dataset.window)
        stats = source.stats()
        expected = sandbox.total_minutes(dataset.window.start, dataset.window.end) * 60
    assert sum(e.duration_seconds for e in entries) == expected
    assert stats["retries"] == 1


def test_monday_internal_server_error_inside_a_200_is_retried(dataset: Dataset) -> None:
    with MondaySandbox(dataset) as sandbox, monday_source(sandbox, page_size=2) as source:
        raw = httpx.post(
            sandbox.base_url,
            headers={"Authorization": sandbox.token},
            json={"query": "query { me { id } }"},
        )
        sandbox.fail_next(
            monday_routes.ME, 1, code=monday_routes.INTERNAL_SERVER_ERROR, message="Internal server error"
        )
        shown = httpx.post(
            sandbox.base_url, headers={"Authorization": sandbox.token}, json={"query": "query { me { id } }"}
        )
        sandbox.fail_next(
            monday_routes.NEXT_ITEMS_PAGE, 1, code=monday_routes.INTERNAL_SERVER_ERROR, message="Internal server error"
        )
        entries = fetch_all(source, dataset.window)
        stats = source.stats()
        keys = sandbox.session_ids(dataset.window.start, dataset.window.end)
    assert raw.status_code == shown.status_code == 200
    error = shown.json()["errors"][0]
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "status_code": 500}
    assert sorted(e.external_id for e in entries) == sorted(keys)
    assert stats["retries"] == 1


@pytest.mark.parametrize("kind", KINDS, ids=[k.value for k in KINDS])
def test_asana_sdk_path_survives_one_garbled_answer(
    asana_sandbox: AsanaSandbox, dataset: Dataset, kind: GarbageKind
) -> None:
    asana_sandbox.garble_next(asana_routes.ENTRIES_LIST, 1, kind)
    with asana_source(asana_sandbox) as source:
        entries = fetch_all(source, dataset.window)
        stats = source.stats()
    assert sum(e.duration_seconds for e in entries) == asana_sandbox.total_minutes() * 60
    assert stats["retries"] == 1


# -- after the bound: a clean, readable failure ---------------------------------------------------


def test_garbage_past_the_bound_fails_with_a_readable_transient_error(dataset: Dataset) -> None:
    with ClickUpSandbox(dataset) as sandbox, clickup_source(sandbox, max_attempts=3, concurrency=1) as source:
        sandbox.garble_next(clickup_routes.TIME_ENTRIES_LIST, 50, GarbageKind.HTML)
        scope = next(iter(source.scopes()))
        with pytest.raises(GarbledAnswer) as info:
            list(source.fetch(scope, dataset.window))
        calls = sandbox.call_count(clickup_routes.TIME_ENTRIES_LIST)
    assert calls == 3
    assert (
        info.value.message
        == "ClickUp answered HTTP 200 with an HTML page instead of JSON (a proxy, gateway or maintenance page)"
    )
    assert "<html" not in info.value.message.lower()  # the page itself never reaches the admin


def test_a_run_gives_up_one_garbled_source_and_finishes_the_others(
    tmp_path: Path, sqlite_engine: Engine, dataset: Dataset
) -> None:
    from connectors.errors import Action
    from sync.run.pipeline import run_sync
    from sync.settings import Settings
    from tests.unit.test_delivery import DOCUMENT

    (tmp_path / "rules.yaml").write_text(DOCUMENT, encoding="utf-8")
    now = datetime.combine(dataset.anchor, datetime.min.time(), tzinfo=UTC).replace(hour=23)
    settings = Settings(database_url="sqlite://", mappings_file=tmp_path / "rules.yaml", start_date=dataset.start)
    with ClickUpSandbox(dataset) as clickup, MondaySandbox(dataset) as monday:
        clickup.garble_next(clickup_routes.TIME_ENTRIES_LIST, 1000, GarbageKind.TRUNCATED)
        broken = ClickUpSource(
            ClickUpConfig(token=SecretStr(clickup.token), base_url=clickup.base_url, max_attempts=2, concurrency=1),
            limiter=RateLimiter(1_000_000, clock=FakeClock()),
            sleep=no_sleep,
        )
        healthy = monday_source(monday)
        try:
            result = run_sync(
                settings,
                sources={"clickup": broken, "monday": healthy},
                engine=sqlite_engine,
                as_of=now,
                clock=lambda: now,
                write_reports=False,
                deliver_to_sinks=False,
            )
        finally:
            broken.close()
            healthy.close()
        monday_sessions = monday.session_ids(dataset.start, dataset.anchor)
    assert result.status == "partial"
    failed = [e for e in result.errors if e.subject == "clickup"]
    assert failed and all(e.action is Action.TRANSIENT for e in failed)
    assert "ClickUp answered HTTP 200 with a truncated or malformed JSON body" in failed[0].message
    done = {s.source: s for s in result.scopes}
    assert done["monday"].error is None
    # Every monday session of the window reached the ledger although ClickUp's window was given up.
    assert done["monday"].counts.created == len(monday_sessions) > 0
