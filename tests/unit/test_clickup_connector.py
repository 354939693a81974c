"""ClickUpSource against mocked HTTP: assignees, ms windows, timers, work dates, custom fields, limits, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import SecretStr, ValidationError
from structlog.testing import capture_logs

from connectors._ratelimit import RateLimiter
from connectors.clickup import ClickUpConfig, ClickUpSource
from connectors.clickup.normalize import to_ms
from connectors.errors import ConfigError
from connectors.model import Scope, TimeEntry, Window
from tests.fakes import FakeClock

BASE = "https://api.clickup.test/api"
TOKEN = "pk_unit_clickup_4242"
TEAM = "9001"
ENTRIES = f"/v2/team/{TEAM}/time_entries"
TASKS = f"/v2/team/{TEAM}/task"
START = 1_800_000_000.0


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def make_source(clock: FakeClock, **config: Any) -> ClickUpSource:
    settings = ClickUpConfig(token=SecretStr(config.pop("token", TOKEN)), base_url=BASE, **config)
    limiter = RateLimiter(1_000_000, clock=clock)
    return ClickUpSource(settings, limiter=limiter, sleep=clock.sleep, clock=clock)


MEMBERS = (
    (101, "Zoë Müller", "Zoe.Mueller@Example.com", 1),
    (202, "José Álvarez", "jose@example.org", 3),
    (3003, "Aroha Ngata", "aroha@example.com", 4),
)


def mock_people(mock: respx.MockRouter, *, owner_role: int = 1) -> None:
    members = [
        {"user": {"id": uid, "username": name, "email": email, "role": owner_role if uid == 101 else role}}
        for uid, name, email, role in MEMBERS
    ]
    mock.get("/v2/user").respond(json={"user": {"id": 101, "username": "Zoë Müller", "email": MEMBERS[0][2]}})
    mock.get("/v2/team").respond(json={"teams": [{"id": TEAM, "name": "Łódź Studio", "members": members}]})


def entry(
    entry_id: str,
    start: datetime,
    duration_ms: int,
    *,
    user: int = 202,
    numbers: bool = False,
    task: str | None = "t1",
    list_id: int = 501,
    **extra: Any,
) -> dict[str, Any]:
    start_ms = to_ms(start)
    payload: dict[str, Any] = {
        "id": entry_id,
        "wid": TEAM,
        "user": {"id": user, "username": {m[0]: m[1] for m in MEMBERS}[user], "email": "Mixed@Case.example"},
        "billable": True,
        "start": start_ms if numbers else str(start_ms),
        "duration": str(duration_ms),
        "description": "Überarbeitung der Startseite",
        "tags": [{"name": "Design"}],
        "source": "clickup",
        "at": str(start_ms),
        "task_location": {
            "list_id": list_id,
            "folder_id": 401,
            "space_id": 301,
            "list_name": "Łódź – Brand refresh",
            "folder_name": "Łódź Design Collective",
            "space_name": "Clients",
        },
        "task_tags": [{"name": "billable", "tag_fg": "#fff", "tag_bg": "#000", "creator": 101}],
    }
    if duration_ms >= 0:
        end_ms = start_ms + duration_ms
        payload["end"] = end_ms if numbers else str(end_ms)
    if task is not None:
        payload["task"] = {"id": task, "custom_id": None, "name": "Wireframes", "status": {"status": "open"}}
    payload.update(extra)
    return payload


def task(task_id: str, value: Any = None, *, custom_id: str | None = None) -> dict[str, Any]:
    field: dict[str, Any] = {
        "id": "f-code",
        "name": "Project code",
        "type": "drop_down",
        "type_config": {
            "options": [
                {"id": "opt-a", "name": "NWT-WEB", "orderindex": 0},
                {"id": "opt-b", "name": "LDC-BRAND", "orderindex": 1},
                {"id": "opt-c", "name": "ŁDZ-ÜBER", "orderindex": 2},
            ]
        },
    }
    if value is not None:
        field["value"] = value
    return {"id": task_id, "custom_id": custom_id, "name": "Wireframes", "custom_fields": [field], "tags": []}


def fetch(source: ClickUpSource, window: Window) -> list[TimeEntry]:
    scope = Scope("clickup", TEAM, "Łódź Studio", timezone=source.config.timezone)
    return list(source.fetch(scope, window))


def query(request: httpx.Request) -> dict[str, list[str]]:
    return parse_qs(request.url.query.decode())


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# --------------------------------------------------------------------------- requests


def test_assignee_names_every_member_with_the_include_flags(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock_people(mock)
    route = mock.get(ENTRIES).respond(json={"data": []})
    with make_source(clock, custom_fields=False) as source:
        assert fetch(source, Window(date(2026, 11, 2), date(2026, 11, 2))) == []
    params = query(route.calls.last.request)
    assert set(params["assignee"][0].split(",")) == {str(m[0]) for m in MEMBERS}
    assert params["include_location_names"] == ["true"] and params["include_task_tags"] == ["true"]
    assert route.calls.last.request.headers["Authorization"] == TOKEN  # ClickUp: no "Bearer"


def test_window_is_split_into_chunks_with_local_midnights_in_ms(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock_people(mock)
    route = mock.get(ENTRIES).respond(json={"data": []})
    # Los Angeles moves to daylight time on 2026-03-08: midnights are 08:00 UTC before, 07:00 after.
    with make_source(clock, timezone="America/Los_Angeles", window_days=3, custom_fields=False) as source:
        fetch(source, Window(date(2026, 3, 5), date(2026, 3, 12)))
    ranges = sorted((int(query(c.request)["start_date"][0]), int(query(c.request)["end_date"][0])) for c in route.calls)
    assert ranges == [
        (to_ms(utc(2026, 3, 5, 8)), to_ms(utc(2026, 3, 8, 8))),
        (to_ms(utc(2026, 3, 8, 8)), to_ms(utc(2026, 3, 11, 7))),
        (to_ms(utc(2026, 3, 11, 7)), to_ms(utc(2026, 3, 13, 7))),
    ]


# --------------------------------------------------------------------------- entries


def test_running_timer_is_skipped_and_duration_strings_are_floored(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock_people(mock)
    start = utc(2026, 11, 2, 9)
    mock.get(ENTRIES).respond(json={"data": [entry("1", start, 5_400_999), entry("2", start, -to_ms(start), user=101)]})
    with make_source(clock, custom_fields=False) as source:
        entries = fetch(source, Window(date(2026, 11, 2), date(2026, 11, 2)))
    assert [(e.external_id, e.duration_seconds) for e in entries] == [("1", 5400)]
    assert entries[0].ended_at == utc(2026, 11, 2, 10, 30, 0, 999000)


def test_start_and_end_parse_as_numbers_or_strings(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock_people(mock)
    start = utc(2026, 11, 2, 9, 15)
    mock.get(ENTRIES).respond(json={"data": [entry("1", start, 3_600_000), entry("2", start, 3_600_000, numbers=True)]})
    with make_source(clock, custom_fields=False) as source:
        first, second = fetch(source, Window(date(2026, 11, 2), date(2026, 11, 2)))
    assert first.started_at == second.started_at == start
    assert first.ended_at == second.ended_at == utc(2026, 11, 2, 10, 15)


def test_work_date_is_the_local_day_of_the_start(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock_people(mock)
    late = entry("late", utc(2026, 11, 10, 22, 30), 7_200_000)  # 23:30 in Berlin: filed on the 10th
    after = entry("after", utc(2026, 11, 10, 23, 30), 3_600_000)  # 00:30 in Berlin: filed on the 11th
    # ClickUp answers by overlap, so both one-day chunks see both entries; each is yielded once.
    mock.get(ENTRIES).respond(json={"data": [late, after]})
    with make_source(clock, timezone="Europe/Berlin", window_days=1, custom_fields=False) as source:
        both = fetch(source, Window(date(2026, 11, 10), date(2026, 11, 11)))
        eleventh = fetch(source, Window(date(2026, 11, 11), date(2026, 11, 11)))
    assert [(e.external_id, e.work_date) for e in both] == [("late", date(2026, 11, 10)), ("after", date(2026, 11, 11))]
    assert [e.external_id for e in eleventh] == ["after"]


def test_unicode_names_containers_tags_and_person(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock_people(mock)
    mock.get(ENTRIES).respond(
        json={"data": [entry("1", utc(2026, 11, 2, 9), 60_000, approval={"id": "a", "status": "approved"})]}
    )
    with make_source(clock, custom_fields=False) as source:
        (only,) = fetch(source, Window(date(2026, 11, 2), date(2026, 11, 2)))
    assert only.person.id == "202" and only.person.name == "José Álvarez"
    assert only.person.email == "mixed@case.example"
    assert [(c.kind, c.id, c.name) for c in only.containers] == [
        ("workspace", TEAM, "Łódź Studio"),
        ("space", "301", "Clients"),
        ("folder", "401", "Łódź Design Collective"),
        ("list", "501", "Łódź – Brand refresh"),
    ]
    assert only.tags == ("Design", "billable")
    assert only.description == "Überarbeitung der Startseite"
    assert only.approval_status == "approved" and only.billable is True


def test_drop_down_values_resolve_to_option_names_and_custom_ids_carry_over(
    mock: respx.MockRouter, clock: FakeClock
) -> None:
    mock_people(mock)
    day = utc(2026, 11, 2, 9)
    mock.get(ENTRIES).respond(
        json={
            "data": [
                entry("1", day, 60_000, task="t1"),
                entry("2", day, 60_000, task="t2"),
                entry("3", day, 60_000, task="t3"),
                entry("4", day, 60_000, task="t4", list_id=502),
                entry("5", day, 60_000, task="t5"),
            ]
        }
    )
    # Newer ClickUp answers say ``last_page``; the listing must follow it rather than the page length.
    pages = mock.get(TASKS)
    pages.side_effect = [
        httpx.Response(200, json={"tasks": [task("t1", 1, custom_id="HB-7"), task("t2", "opt-c")], "last_page": False}),
        httpx.Response(200, json={"tasks": [task("t3", "2"), task("t4")], "last_page": True}),
    ]
    # t5 is in neither listed list (moved since): one GET of its own.
    mock.get("/v2/task/t5").respond(json=task("t5", 0))
    with make_source(clock) as source:
        entries = {e.external_id: e for e in fetch(source, Window(date(2026, 11, 2), date(2026, 11, 2)))}
    codes = {key: e.custom_field_map.get("Project code") for key, e in entries.items()}
    assert codes == {"1": "LDC-BRAND", "2": "ŁDZ-ÜBER", "3": "ŁDZ-ÜBER", "4": None, "5": "NWT-WEB"}
    assert entries["1"].task is not None and entries["1"].task.custom_id == "HB-7"
    first, second = (query(call.request) for call in pages.calls)
    assert first["page"] == ["0"] and second["page"] == ["1"]
    assert first["list_ids[]"] == ["501", "502"]
    assert first["include_closed"] == ["true"] and first["subtasks"] == ["true"]


# --------------------------------------------------------------------------- limits and errors


@pytest.mark.parametrize(
    "limited",
    [
        {"X-RateLimit-Reset": str(int(START) + 30)},
        {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(START) + 30)},
    ],
    ids=["reset-only", "all-three"],
)
def test_429_without_retry_after_waits_until_the_rate_limit_reset(
    mock: respx.MockRouter, clock: FakeClock, limited: dict[str, str]
) -> None:
    user = mock.get("/v2/user")
    user.side_effect = [
        httpx.Response(429, json={"err": "Rate limit reached", "ECODE": "APP_002"}, headers=limited),
        httpx.Response(200, json={"user": {"id": 101}}),
    ]
    mock.get("/v2/team").respond(json={"teams": [{"id": TEAM, "members": [{"user": {"id": 101, "role": 2}}]}]})
    with make_source(clock) as source, capture_logs() as logs:
        source.check()
        stats = source.stats()
    assert sum(clock.sleeps) == pytest.approx(30.0, abs=0.01)  # plus one token at the bucket rate
    # The reset reached the retry policy as the vendor's own wait: no jittered guess on top.
    assert [log["wait"] for log in logs if log["event"] == "http.retry"] == [0.0]
    assert stats == {"api_calls": 3, "retries": 1, "throttled": 1}


def test_exhausted_quota_on_a_success_pauses_before_the_next_call(mock: respx.MockRouter, clock: FakeClock) -> None:
    spent = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(START) + 12)}
    mock.get("/v2/user").respond(json={"user": {"id": 101}}, headers=spent)
    mock.get("/v2/team").respond(json={"teams": [{"id": TEAM, "members": []}]})
    with make_source(clock) as source:
        source.check()
    assert sum(clock.sleeps) == pytest.approx(12.0, abs=0.01)


def test_refused_token_names_the_variable_and_hides_the_token(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock.get("/v2/user").respond(401, json={"err": f"Token invalid: {TOKEN}", "ECODE": "OAUTH_025"})
    with make_source(clock) as source, pytest.raises(ConfigError) as info:
        source.check()
    assert "HOURBRIDGE_CLICKUP__TOKEN" in info.value.message
    assert TOKEN not in info.value.message and TOKEN not in str(info.value)


@pytest.mark.parametrize("role", [3, 4])
def test_member_or_guest_token_asks_for_an_admin_token(mock: respx.MockRouter, clock: FakeClock, role: int) -> None:
    mock_people(mock, owner_role=role)
    with make_source(clock) as source, pytest.raises(ConfigError) as info:
        fetch(source, Window(date(2026, 11, 2), date(2026, 11, 2)))
    message = info.value.message
    assert "admin token is needed to read every member's time" in message
    assert "HOURBRIDGE_CLICKUP__TOKEN" in message and ("member" in message or "guest" in message)


def test_missing_token_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="HOURBRIDGE_CLICKUP__TOKEN"):
        ClickUpSource(ClickUpConfig(base_url=BASE))


def test_unknown_time_zone_is_a_clear_settings_error() -> None:
    with pytest.raises(ValidationError, match="HOURBRIDGE_CLICKUP__TIMEZONE"):
        ClickUpConfig(timezone="Mars/Olympus_Mons")


def test_unknown_team_names_the_setting(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock.get("/v2/team").respond(json={"teams": [{"id": TEAM, "members": []}]})
    with (
        make_source(clock, team_ids=["777"]) as source,
        pytest.raises(ConfigError, match="HOURBRIDGE_CLICKUP__TEAM_IDS"),
    ):
        list(source.scopes())


# --------------------------------------------------------------------------- nulls the spec allows


NULL_TASK_FIELDS = ("date_closed", "parent", "priority", "due_date", "start_date", "points", "time_estimate")


def test_entries_without_a_task_or_with_null_task_fields_are_kept_and_mapped_or_held(
    mock: respx.MockRouter, clock: FakeClock
) -> None:
    import sync.settings  # noqa: F401  (installs the registry's vocabulary: ``list`` is a ClickUp container)
    from mappings.engine import Mapped, Unmapped, compile_rules
    from mappings.schema import MappingDocument

    mock_people(mock)
    day = utc(2026, 11, 2, 9)
    # ClickUp: time logged without a task answers ``task: null`` and no location; a task's own
    # ``custom_id``, ``name`` and ``status`` may be null too.
    no_task = entry("1", day, 600_000, task=None, task_location=None, task_url=None, task_tags=[])
    nulls = entry("2", day, 600_000, task="t2")
    nulls["task"] = {"id": "t2", "custom_id": None, "name": None, "status": None, "custom_type": None}
    mock.get(ENTRIES).respond(json={"data": [no_task, nulls]})
    listed = {**task("t2", 1), **dict.fromkeys(NULL_TASK_FIELDS), "custom_id": None, "name": None, "tags": None}
    mock.get(TASKS).respond(json={"tasks": [listed], "last_page": True})
    with make_source(clock) as source:
        entries = {e.external_id: e for e in fetch(source, Window(date(2026, 11, 2), date(2026, 11, 2)))}
    assert sorted(entries) == ["1", "2"]
    bare, coded = entries["1"], entries["2"]
    assert bare.task is None and [c.kind for c in bare.containers] == ["workspace"]
    assert bare.duration_seconds == 600 and bare.tags == ("Design",)
    assert coded.task is not None and coded.task.custom_id is None and coded.task.name == ""
    assert coded.custom_field_map.get("Project code") == "LDC-BRAND"

    codes = {
        name: {"name": name, "client": "Client", "cost_center": "CC-1", "billable": True}
        for name in ("LDC-BRAND", "ADMIN")
    }
    rules: list[dict[str, Any]] = [
        {"id": "by-field", "priority": 200, "code_from_custom_field": "Project code"},
        {"id": "by-list", "priority": 100, "code": "LDC-BRAND", "match": {"list": "Łódź – Brand refresh"}},
    ]
    strict = compile_rules(MappingDocument.model_validate({"version": 1, "codes": codes, "rules": rules}))
    held = strict.match(bare)
    assert isinstance(held, Unmapped) and held.reason == "no_rule_matched"
    assert isinstance(strict.match(coded), Mapped)
    # Another rule that needs no task or list (the Workspace and the source) maps it.
    rules.append({"id": "workspace", "priority": 10, "code": "ADMIN", "match": {"source": "clickup"}})
    lenient = compile_rules(MappingDocument.model_validate({"version": 1, "codes": codes, "rules": rules}))
    result = lenient.match(bare)
    assert isinstance(result, Mapped) and result.code == "ADMIN"
