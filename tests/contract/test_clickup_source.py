"""ClickUpSource against the sandbox: totals, call costs, edits, pacing from rate-limit headers, spec shapes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.clickup import ClickUpConfig, ClickUpSource
from connectors.errors import ConfigError
from connectors.model import TimeEntry, Window
from connectors.sandbox import clickup as routes
from connectors.sandbox.clickup import ClickUpSandbox
from connectors.sandbox.dataset import Dataset, generate_dataset
from tests.fakes import FakeClock

from .conftest import ANCHOR
from .makers_clickup import clickup_source

# Wall-clock seconds shared by the sandbox and the source; only sleeping moves them.
CLOCK_START = 1_800_000_000.0


@pytest.fixture
def sandbox(dataset: Dataset) -> Iterator[ClickUpSandbox]:
    with ClickUpSandbox(dataset) as running:
        yield running


def fetch_all(source: ClickUpSource, window: Window) -> list[TimeEntry]:
    return [e for s in source.scopes() for e in source.fetch(s, window)]


def test_totals_and_fields_match_the_sandbox(sandbox: ClickUpSandbox, dataset: Dataset) -> None:
    window = dataset.window
    with clickup_source(sandbox) as source:
        entries = fetch_all(source, window)
    assert sum(e.duration_seconds for e in entries) == sandbox.total_minutes(window.start, window.end) * 60
    assert sorted(e.external_id for e in entries) == sorted(sandbox.entry_ids(window.start, window.end))
    assert sandbox.running_timer_id not in {e.external_id for e in entries}
    by_id = {e.external_id: e for e in entries}
    coded = next(
        e for e in dataset.entries if dataset.task(e.task_id).code and dataset.start < e.work_date < dataset.anchor
    )
    for sample in (dataset.entries[len(dataset.entries) // 2], coded):
        entry = by_id[sandbox.entry_id(sample.id)]
        task = dataset.task(sample.task_id)
        person = dataset.contractor(sample.person_id)
        assert entry.started_at == sample.started_at and entry.duration_seconds == sample.minutes * 60
        assert entry.person.name == person.name and entry.person.email == person.email.lower()
        assert entry.task is not None and entry.task.name == task.name
        assert entry.task.custom_id == sandbox.task_custom_id(entry.task.id)
        container = entry.container("list")
        assert container is not None and container.name == dataset.project(sample.project_id).name
        assert entry.billable is sample.billable
        assert entry.custom_field_map.get("Project code") == task.code
        assert set(task.tags) <= set(entry.tags)


def test_call_counts_are_per_chunk_not_per_entry(dataset: Dataset) -> None:
    """Calls per run: 1 user + 1 team (members included) + 1 time_entries per chunk + task pages.

    ClickUp does not page time entries, so the cost does not grow with the number of entries: this
    1,000-entry month costs 2 + 5 chunks (7 days each) + 1 task page = 8 calls, i.e. 8 calls per
    1,000 entries here and fewer per 1,000 as months get busier (10,000 entries: still 8 calls,
    plus one task page per further 100 tasks in the lists touched).
    """
    busy = generate_dataset(7, anchor=ANCHOR, days=30, entries=1_000)
    with ClickUpSandbox(busy) as sandbox, clickup_source(sandbox) as source:
        entries = fetch_all(source, busy.window)
        stats = source.stats()
    chunks = len(busy.window.split(7))
    assert len(entries) == len(sandbox.entry_ids(busy.start, busy.anchor)) > 950
    assert sandbox.call_count(routes.USER_GET) == 1
    assert sandbox.call_count(routes.TEAMS_LIST) == 1
    assert sandbox.call_count(routes.TIME_ENTRIES_LIST) == chunks == 5
    assert sandbox.call_count(routes.TASKS_LIST) == 1
    assert sandbox.call_count(routes.TASK_GET) == 0
    assert stats["api_calls"] == sandbox.call_count() == 8


def test_small_task_pages_are_followed_to_the_last_page(dataset: Dataset) -> None:
    with ClickUpSandbox(dataset, task_page_size=7) as sandbox, clickup_source(sandbox) as source:
        entries = fetch_all(source, dataset.window)
    coded = [e for e in entries if e.custom_field_map.get("Project code")]
    assert coded and sandbox.call_count(routes.TASKS_LIST) >= 53 // 7
    assert sandbox.call_count(routes.TASK_GET) == 0


def test_edits_and_deletions_show_in_the_next_fetch(sandbox: ClickUpSandbox, dataset: Dataset) -> None:
    ids = sandbox.entry_ids(dataset.start, dataset.anchor)
    sandbox.edit_entry(ids[0], duration_minutes=77)
    sandbox.delete_entry(ids[1])
    with clickup_source(sandbox) as source:
        entries = {e.external_id: e for e in fetch_all(source, dataset.window)}
    assert entries[ids[0]].duration_seconds == 77 * 60
    assert ids[1] not in entries
    assert sum(e.duration_seconds for e in entries.values()) == sandbox.total_minutes() * 60


def test_only_the_exposed_projects_are_served(dataset: Dataset) -> None:
    with ClickUpSandbox(dataset, projects={"pr01", "pr02"}) as sandbox, clickup_source(sandbox) as source:
        entries = fetch_all(source, dataset.window)
        without_task = set(sandbox.entries_without_task)
    # Time logged without a task is in no list (it belongs to the Workspace only); every other sandbox
    # entry has a list, and a None would fail here anyway.
    lists = {e.container("list").id for e in entries if e.external_id not in without_task}  # type: ignore[union-attr]
    assert entries and lists <= {sandbox.list_id("pr01"), sandbox.list_id("pr02")}
    assert all(e.container("list") is None for e in entries if e.external_id in without_task)


def test_local_time_zone_decides_the_work_date(dataset: Dataset) -> None:
    day = date(2026, 11, 12)
    with (
        ClickUpSandbox(dataset, timezone="Pacific/Auckland") as sandbox,
        clickup_source(sandbox, timezone="Pacific/Auckland") as source,
    ):
        entries = fetch_all(source, Window(day, day))
        assert sorted(e.external_id for e in entries) == sorted(sandbox.entry_ids(day, day))
    assert entries and all(e.work_date == day for e in entries)


def _paced(dataset: Dataset, **config: Any) -> tuple[dict[str, int], float, int]:
    clock = FakeClock(CLOCK_START)
    with ClickUpSandbox(dataset, rate_limit_per_minute=4, clock=clock) as sandbox:
        # The plan setting claims far more than the sandbox allows: only the headers keep us in line.
        settings = ClickUpConfig(token=SecretStr(sandbox.token), base_url=sandbox.base_url, plan="enterprise", **config)
        limiter = RateLimiter(10_000, clock=clock)
        with ClickUpSource(settings, limiter=limiter, sleep=clock.sleep, clock=clock) as source:
            entries = fetch_all(source, dataset.window)
            assert sum(e.duration_seconds for e in entries) == sandbox.total_minutes() * 60
            return source.stats(), clock.slept, sandbox.rate_limited_count


def test_rate_limit_headers_pace_the_source_without_429s(dataset: Dataset) -> None:
    # One request at a time (no task listing beside the chunks), so the fake clock is exact.
    stats, slept, rejected = _paced(dataset, concurrency=1, custom_fields=False)
    assert (stats["api_calls"], stats["throttled"], rejected) == (7, 0, 0)
    # 7 calls at 4 per minute: the first window had to be waited out once.
    assert slept == pytest.approx(60.0, abs=0.1)


def test_parallel_chunks_share_the_pause_instead_of_storming(dataset: Dataset) -> None:
    stats, _, rejected = _paced(dataset, concurrency=4)
    # A fake clock lets a thread's token wait pass instantly, so a request already holding a token
    # can beat the answer that empties the quota; every 429 then pauses all threads until the
    # reset, so at most the other workers' requests are ever refused, and each only once.
    assert stats["throttled"] == rejected == stats["retries"] <= 3


def test_429_without_retry_after_waits_for_the_reset(dataset: Dataset) -> None:
    clock = FakeClock(CLOCK_START)
    with ClickUpSandbox(dataset, clock=clock) as sandbox:
        reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(clock.now) + 25)}
        sandbox.fail_next(routes.TIME_ENTRIES_LIST, 1, 429, reset)
        settings = ClickUpConfig(token=SecretStr(sandbox.token), base_url=sandbox.base_url, concurrency=1)
        limiter = RateLimiter(10_000, clock=clock)
        with ClickUpSource(settings, limiter=limiter, sleep=clock.sleep, clock=clock) as source:
            entries = fetch_all(source, dataset.window)
            stats = source.stats()
        assert sum(e.duration_seconds for e in entries) == sandbox.total_minutes() * 60
    assert stats["throttled"] == 1 and stats["retries"] == 1
    # The reset, plus one token per later call at the bucket's 10,000/min once the pause drained it.
    assert clock.slept == pytest.approx(25.0, abs=0.1)


def test_member_token_is_told_to_use_an_admin_token(dataset: Dataset) -> None:
    with ClickUpSandbox(dataset, owner_role=3) as sandbox, clickup_source(sandbox) as source:
        with pytest.raises(ConfigError, match="admin token is needed") as info:
            source.check()
        assert sandbox.call_count(routes.TIME_ENTRIES_LIST) == 0
    assert "HOURBRIDGE_CLICKUP__TOKEN" in info.value.message


# -- the sandbox speaks the official spec's shapes ------------------------------------------------


def _find_spec() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "specs" / "clickup-api-v2-reference.json"
        if candidate.is_file():
            return candidate
    return None


def _null_allowed(node: Any) -> Any:
    """ClickUp's own examples carry null where its schema says string (``custom_id``): allow null."""
    if isinstance(node, list):
        return [_null_allowed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _null_allowed(value) for key, value in node.items()}
    kind = out.get("type")
    if isinstance(kind, str) and kind != "null":
        out["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        out["type"] = [*kind, "null"]
    return out


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    path = _find_spec()
    if path is None:
        pytest.skip("shared/specs/clickup-api-v2-reference.json not found next to the repository")
    document: dict[str, Any] = _null_allowed(json.loads(path.read_text(encoding="utf-8")))
    return document


def _validate(spec: dict[str, Any], path: str, instance: Any) -> None:
    escaped = path.replace("~", "~0").replace("/", "~1").replace("{", "%7B").replace("}", "%7D")
    pointer = f"#/paths/{escaped}/get/responses/200/content/application~1json/schema"
    jsonschema.Draft202012Validator({**spec, "$ref": pointer}).validate(instance)


def test_sandbox_answers_match_the_official_schemas(sandbox: ClickUpSandbox, spec: dict[str, Any]) -> None:
    team = sandbox.team_id
    everyone = ",".join(sandbox.user_id(c.id) for c in sandbox.dataset.contractors)
    flags = {"include_task_tags": "true", "include_location_names": "true", "include_approval_details": "true"}
    task_id = sandbox.task_id(sandbox.dataset.tasks[0].id)
    checks = [
        ("/v2/user", "/v2/user", {}),
        ("/v2/team", "/v2/team", {}),
        ("/v2/team/{team_Id}/time_entries", f"/v2/team/{team}/time_entries", {"assignee": everyone, **flags}),
        ("/v2/team/{team_Id}/task", f"/v2/team/{team}/task", {"page": "0"}),
        ("/v2/task/{task_id}", f"/v2/task/{task_id}", {}),
    ]
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": sandbox.token}) as client:
        start, end = sandbox.dataset.window.start, sandbox.dataset.window.end
        for spec_path, url, params in checks:
            if spec_path.endswith("time_entries"):
                params = {**params, "start_date": _day_ms(start), "end_date": _day_ms(end)}
            response = client.get(url, params=params)
            assert response.status_code == 200, response.text
            _validate(spec, spec_path, response.json())
            if spec_path.endswith("time_entries"):
                assert len(response.json()["data"]) > 100


def _day_ms(day: date) -> str:
    return str(int(datetime.combine(day, datetime.min.time(), tzinfo=UTC).timestamp() * 1000))


def test_time_logged_without_a_task_comes_through_with_no_task(sandbox: ClickUpSandbox, dataset: Dataset) -> None:
    without_task = sandbox.entries_without_task
    with clickup_source(sandbox) as source:
        entries = {e.external_id: e for e in fetch_all(source, dataset.window)}
    assert without_task and set(without_task) <= set(entries)
    for key in without_task:
        assert entries[key].task is None and entries[key].custom_fields == ()
        assert [c.kind for c in entries[key].containers] == ["workspace"]
    # The running timer answers without ``end``, as ClickUp's do.
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": sandbox.token}) as client:
        listed = client.get(f"/v2/team/{sandbox.team_id}/time_entries", params={"assignee": sandbox.owner_id}).json()
    running = [e for e in listed["data"] if e["id"] == sandbox.running_timer_id]
    assert running and "end" not in running[0] and int(running[0]["duration"]) < 0


def test_time_without_a_task_is_mapped_by_a_rule_that_needs_no_task_and_reaches_the_reports(
    tmp_path: Path, sqlite_engine: Any, dataset: Dataset
) -> None:
    from sync.run.pipeline import run_sync
    from sync.settings import Settings

    document = (
        "version: 1\n"
        "codes:\n"
        "  ADMIN: {name: Admin, client: Example, cost_center: CC-1, billable: false}\n"
        "rules:\n"
        "  - {id: everything-clickup, priority: 1, code: ADMIN, match: {source: clickup}}\n"
    )
    (tmp_path / "rules.yaml").write_text(document, encoding="utf-8")
    now = datetime.combine(dataset.anchor, datetime.min.time(), tzinfo=UTC).replace(hour=23)
    settings = Settings(
        database_url="sqlite://",
        mappings_file=tmp_path / "rules.yaml",
        output_dir=tmp_path / "out",
        start_date=dataset.start,
    )
    with ClickUpSandbox(dataset) as sandbox, clickup_source(sandbox) as source:
        result = run_sync(
            settings,
            sources={"clickup": source},
            engine=sqlite_engine,
            as_of=now,
            clock=lambda: now,
            deliver_to_sinks=False,
        )
        without_task = set(sandbox.entries_without_task)
        expected = sandbox.total_minutes(dataset.start, dataset.anchor) * 60
    assert result.status == "ok", result.errors
    reported: dict[str, Any] = {}
    seconds = unmapped = 0
    for path in sorted((tmp_path / "out").glob("hours-*.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        reported.update({line["external_id"]: line for line in report["entries"]})
        seconds += report["totals"]["seconds"]
        unmapped += report["totals"]["unmapped_seconds"]
    assert without_task <= set(reported)
    assert seconds == expected and unmapped == 0
