"""Tests for the Asana emulator, over real loopback sockets."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from connectors.sandbox import asana as asana_sandbox
from connectors.sandbox._asana_wire import OFFSET_TTL_SECONDS
from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.dataset import Dataset, generate_dataset
from tests.fakes import FakeClock

ANCHOR = date(2026, 11, 20)
FULL_ONLY = {"task", "billable_status", "approval_status", "description", "created_at"}


# -- spec ------------------------------------------------------------------------------------------


def _find_spec() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "specs" / "asana_oas.yaml"
        if candidate.is_file():
            return candidate
    return None


def _nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable`` has no JSON Schema meaning; spell it as a null alternative."""
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _nullable_to_json_schema(value) for key, value in node.items()}
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


class Spec:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.components = {"schemas": _nullable_to_json_schema(document["components"]["schemas"])}

    def schema(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.document["components"]["schemas"][name])

    def validate(self, instance: Any, schema: dict[str, Any]) -> None:
        root = {"allOf": [_nullable_to_json_schema(schema)], "components": self.components}
        jsonschema.Draft7Validator(root, format_checker=jsonschema.FormatChecker()).validate(instance)

    def validate_ref(self, instance: Any, name: str) -> None:
        self.validate(instance, {"$ref": f"#/components/schemas/{name}"})

    def response_schema(self, path: str, status: int = 200) -> dict[str, Any]:
        responses = self.document["paths"][path]["get"]["responses"]
        response = responses.get(status) or responses[str(status)]
        return dict(response["content"]["application/json"]["schema"])

    def properties(self, name: str) -> set[str]:
        schema = self.document["components"]["schemas"][name]
        props = set(schema.get("properties", {}))
        for part in schema.get("allOf", []):
            if "$ref" in part:
                props |= self.properties(part["$ref"].rsplit("/", 1)[1])
            props |= set(part.get("properties", {}))
        return props


@pytest.fixture(scope="module")
def spec() -> Spec:
    path = _find_spec()
    if path is None:
        pytest.skip("shared/specs/asana_oas.yaml not found next to the repository; spec checks need it")
    with path.open(encoding="utf-8") as handle:
        # CSafeLoader is the safe loader in C: the spec is 3 MB and the pure-Python one is slow.
        document = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    return Spec(document)


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return generate_dataset(7, anchor=ANCHOR)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(ds: Dataset, clock: FakeClock) -> Iterator[AsanaSandbox]:
    with AsanaSandbox(ds, clock=clock) as running:
        yield running


def _client(sandbox: AsanaSandbox, token: str | None = None) -> httpx.Client:
    headers = {} if token == "" else {"Authorization": f"Bearer {token or sandbox.token}"}
    return httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=10)


@pytest.fixture
def client(sandbox: AsanaSandbox) -> Iterator[httpx.Client]:
    with _client(sandbox) as http:
        yield http


def _window_params(sandbox: AsanaSandbox, ds: Dataset, **extra: Any) -> dict[str, Any]:
    return {
        "workspace": sandbox.workspace_gids[0],
        "entered_on_start_date": ds.start.isoformat(),
        "entered_on_end_date": ds.anchor.isoformat(),
        **extra,
    }


def _collect(http: httpx.Client, path: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Follow ``next_page.offset`` to the end; returns the items and the number of pages."""
    items: list[dict[str, Any]] = []
    pages = 0
    offset: str | None = None
    while True:
        response = http.get(path, params={**params, **({"offset": offset} if offset else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        items.extend(body["data"])
        if body["next_page"] is None:
            return items, pages
        offset = body["next_page"]["offset"]
        assert pages < 10_000, "paging does not terminate"


def _error_message(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["message"])


# -- paging ----------------------------------------------------------------------------------------


def test_paging_covers_every_entry_exactly_once(sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset) -> None:
    items, pages = _collect(client, "/time_tracking_entries", _window_params(sandbox, ds, limit=37))
    gids = [item["gid"] for item in items]
    assert len(gids) == len(set(gids)) == len(ds.entries)
    assert set(gids) == {sandbox.entry_gid(e.id) for e in ds.entries}
    assert sum(item["duration_minutes"] for item in items) == ds.total_minutes
    assert pages == math.ceil(len(ds.entries) / 37)
    assert sandbox.call_count(asana_sandbox.ENTRIES_LIST) == pages
    # Stable ordering: by entered_on, then gid.
    assert [(i["entered_on"], int(i["gid"])) for i in items] == sorted((i["entered_on"], int(i["gid"])) for i in items)


def test_dates_are_inclusive(sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset) -> None:
    start, end = date(2026, 10, 5), date(2026, 10, 9)
    params = _window_params(sandbox, ds, entered_on_start_date=start.isoformat())
    params["entered_on_end_date"] = end.isoformat()
    items, _ = _collect(client, "/time_tracking_entries", {**params, "limit": 100})
    assert {i["gid"] for i in items} == {sandbox.entry_gid(e.id) for e in ds.entries_in(start, end)}
    assert {i["entered_on"] for i in items} == {(start + timedelta(days=n)).isoformat() for n in range(5)}
    only_start, _ = _collect(
        client,
        "/time_tracking_entries",
        {"workspace": sandbox.workspace_gids[0], "entered_on_start_date": "2026-11-16", "limit": 100},
    )
    assert len(only_start) == len(ds.entries_in(date(2026, 11, 16), None))


def test_list_response_matches_the_spec(sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset, spec: Spec) -> None:
    body = client.get("/time_tracking_entries", params=_window_params(sandbox, ds, limit=5)).json()
    spec.validate(body, spec.response_schema("/time_tracking_entries"))
    compact = spec.properties("TimeTrackingEntryCompact")
    for item in body["data"]:
        assert set(item) <= compact
        assert set(item) == {
            "gid",
            "resource_type",
            "duration_minutes",
            "entered_on",
            "attributable_to",
            "created_by",
            "categories",
        }
        assert item["resource_type"] == "time_tracking_entry"
        assert item["gid"].isdigit()
    next_page = body["next_page"]
    spec.validate_ref(next_page, "NextPage")
    assert next_page["path"].startswith("/time_tracking_entries?")
    assert next_page["uri"] == sandbox.base_url + next_page["path"]
    # The uri is directly usable and yields the following page.
    follow = client.get(next_page["uri"]).json()
    assert follow["data"][0]["gid"] != body["data"][-1]["gid"]
    assert int(follow["data"][0]["gid"]) > int(body["data"][-1]["gid"])


def test_forged_tampered_or_foreign_offsets_are_rejected(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset, spec: Spec
) -> None:
    params = _window_params(sandbox, ds, limit=10)
    first = client.get("/time_tracking_entries", params=params).json()
    token = first["next_page"]["offset"]
    assert client.get("/time_tracking_entries", params={**params, "offset": token}).status_code == 200
    forged = client.get("/time_tracking_entries", params={**params, "offset": "eyJib3JkZXJfcmFuayI6WzFdfQ"})
    assert forged.status_code == 400
    spec.validate_ref(forged.json(), "ErrorResponse")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get("/time_tracking_entries", params={**params, "offset": tampered}).status_code == 400
    other_query = {**params, "entered_on_start_date": "2026-10-01"}
    assert client.get("/time_tracking_entries", params={**other_query, "offset": token}).status_code == 400
    with AsanaSandbox(ds) as other, _client(other) as other_http:
        foreign = other_http.get("/time_tracking_entries", params={**params, "offset": token})
        assert foreign.status_code == 400
        assert "offset" in _error_message(foreign)


@pytest.mark.parametrize("limit", ["0", "101", "-3", "ten"])
def test_limit_outside_one_to_hundred_is_rejected(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset, limit: str
) -> None:
    response = client.get("/time_tracking_entries", params=_window_params(sandbox, ds, limit=limit))
    assert response.status_code == 400
    assert "limit" in _error_message(response)


def test_limit_bounds_are_inclusive(sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset) -> None:
    for limit in (1, 100):
        body = client.get("/time_tracking_entries", params=_window_params(sandbox, ds, limit=limit)).json()
        assert len(body["data"]) == limit


def test_workspace_filter_needs_a_date(sandbox: AsanaSandbox, client: httpx.Client) -> None:
    response = client.get("/time_tracking_entries", params={"workspace": sandbox.workspace_gids[0], "limit": 5})
    assert response.status_code == 400
    assert "entered_on" in _error_message(response)
    assert client.get("/time_tracking_entries", params={"limit": 5}).status_code == 400
    bad_date = client.get(
        "/time_tracking_entries",
        params={"workspace": sandbox.workspace_gids[0], "entered_on_start_date": "20261101", "limit": 5},
    )
    assert bad_date.status_code == 400


def test_unpaged_reads_return_everything_or_refuse_when_too_large(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset
) -> None:
    week = {
        "workspace": sandbox.workspace_gids[0],
        "entered_on_start_date": "2026-11-16",
        "entered_on_end_date": "2026-11-20",
    }
    body = client.get("/time_tracking_entries", params=week).json()
    assert "next_page" not in body
    assert len(body["data"]) == len(ds.entries_in(date(2026, 11, 16), date(2026, 11, 20)))
    with AsanaSandbox(generate_dataset(7, anchor=ANCHOR, entries=1_200)) as big, _client(big) as http:
        everything = {"workspace": big.workspace_gids[0], "entered_on_end_date": ANCHOR.isoformat()}
        response = http.get("/time_tracking_entries", params=everything)
        assert response.status_code == 400
        assert "pagination" in _error_message(response)


def test_paging_survives_deletes_and_inserts_between_pages(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset
) -> None:
    params = _window_params(sandbox, ds, limit=50)
    first = client.get("/time_tracking_entries", params=params).json()
    seen = [item["gid"] for item in first["data"]]
    later = sandbox.entry_gid(ds.entries[200].id)
    sandbox.delete_entry(seen[3])
    sandbox.delete_entry(later)
    added = sandbox.add_entry(task_gid=sandbox.task_gid(ds.tasks[0].id), entered_on=ANCHOR, duration_minutes=45)
    rest, _ = _collect(client, "/time_tracking_entries", {**params, "offset": first["next_page"]["offset"]})
    all_gids = seen + [item["gid"] for item in rest]
    assert len(all_gids) == len(set(all_gids))
    assert later not in all_gids
    assert added in all_gids
    assert set(all_gids) - {seen[3]} == set(sandbox.entry_gids())


# -- fields ----------------------------------------------------------------------------------------


def test_opt_fields_select_exactly_the_requested_fields(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset
) -> None:
    params = _window_params(sandbox, ds, limit=20, opt_fields="duration_minutes,created_by.name,attributable_to")
    for item in client.get("/time_tracking_entries", params=params).json()["data"]:
        assert set(item) == {"gid", "resource_type", "duration_minutes", "created_by", "attributable_to"}
        assert set(item["created_by"]) == {"gid", "resource_type", "name"}
        assert set(item["attributable_to"]) == {"gid", "resource_type"}
    entry = ds.entries[0]
    single = client.get(
        f"/time_tracking_entries/{sandbox.entry_gid(entry.id)}", params={"opt_fields": "task.name,entered_on"}
    ).json()["data"]
    assert single == {
        "gid": sandbox.entry_gid(entry.id),
        "resource_type": "time_tracking_entry",
        "entered_on": entry.work_date.isoformat(),
        "task": {"gid": sandbox.task_gid(entry.task_id), "resource_type": "task", "name": ds.task(entry.task_id).name},
    }


def test_full_fields_on_the_list_when_enabled(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset, spec: Spec
) -> None:
    # Lenient mode: the list honours the full-object fields when asked (strict mode refuses asking).
    sandbox.set_strict_opt_fields(False)
    sandbox.set_list_full_fields(True)
    fields = "duration_minutes,entered_on,task,task.name,billable_status,approval_status,description,created_at"
    body = client.get("/time_tracking_entries", params=_window_params(sandbox, ds, limit=100, opt_fields=fields))
    base = spec.properties("TimeTrackingEntryBase")
    by_gid = {sandbox.entry_gid(e.id): e for e in ds.entries}
    for item in body.json()["data"]:
        assert FULL_ONLY <= set(item) <= base
        spec.validate_ref(item, "TimeTrackingEntryBase")
        entry = by_gid[item["gid"]]
        assert item["duration_minutes"] == entry.minutes
        assert item["billable_status"] == ("billable" if entry.billable else "nonBillable")
        assert item["approval_status"] == entry.approval_status
        assert item["description"] == (entry.description or "")
        assert item["task"]["name"] == ds.task(entry.task_id).name


def test_list_full_fields_off_drops_the_full_only_fields(ds: Dataset, clock: FakeClock, spec: Spec) -> None:
    fields = "duration_minutes,created_by.name,task,task.name,billable_status,approval_status,description,created_at"
    with (
        AsanaSandbox(ds, list_full_fields=False, strict_opt_fields=False, clock=clock) as sandbox,
        _client(sandbox) as http,
    ):
        compact = spec.properties("TimeTrackingEntryCompact")
        listed = http.get("/time_tracking_entries", params=_window_params(sandbox, ds, limit=50, opt_fields=fields))
        task_gid = sandbox.task_gid(ds.entries[0].task_id)
        per_task = http.get(f"/tasks/{task_gid}/time_tracking_entries", params={"limit": 50, "opt_fields": fields})
        for response in (listed, per_task):
            assert response.status_code == 200
            for item in response.json()["data"]:
                assert set(item) == {"gid", "resource_type", "duration_minutes", "created_by"}
                assert set(item) <= compact
                spec.validate_ref(item, "TimeTrackingEntryCompact")
        # The single GET still serves them: that is the fallback a connector can use.
        gid = listed.json()["data"][0]["gid"]
        single = http.get(f"/time_tracking_entries/{gid}", params={"opt_fields": fields}).json()["data"]
        assert set(single) >= FULL_ONLY
        sandbox.set_list_full_fields(True)
        again = http.get("/time_tracking_entries", params=_window_params(sandbox, ds, limit=5, opt_fields=fields))
        assert all(set(item) >= FULL_ONLY for item in again.json()["data"])


def test_single_entry_default_is_the_full_object(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset, spec: Spec
) -> None:
    entry = next(e for e in ds.entries if e.category and e.description)
    response = client.get(f"/time_tracking_entries/{sandbox.entry_gid(entry.id)}")
    assert response.status_code == 200
    spec.validate(response.json(), spec.response_schema("/time_tracking_entries/{time_tracking_entry_gid}"))
    data = response.json()["data"]
    assert set(data) == spec.properties("TimeTrackingEntryBase")
    assert data["created_by"]["name"] == ds.contractor(entry.person_id).name
    assert data["attributable_to"]["name"] == ds.project(entry.project_id).name
    assert [c["name"] for c in data["categories"]] == [entry.category]
    assert data["created_at"].endswith("Z")


def test_per_task_endpoint_pages_only_that_task(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset, spec: Spec
) -> None:
    task = max(ds.tasks, key=lambda t: sum(1 for e in ds.entries if e.task_id == t.id))
    expected = {sandbox.entry_gid(e.id) for e in ds.entries if e.task_id == task.id}
    path = f"/tasks/{sandbox.task_gid(task.id)}/time_tracking_entries"
    items, pages = _collect(client, path, {"limit": 7})
    assert {i["gid"] for i in items} == expected
    assert len(items) == len(expected)
    assert pages == math.ceil(len(expected) / 7)
    spec.validate(
        client.get(path, params={"limit": 3}).json(), spec.response_schema("/tasks/{task_gid}/time_tracking_entries")
    )


# -- catalog endpoints -----------------------------------------------------------------------------


def test_users_me_is_the_token_owner(sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset, spec: Spec) -> None:
    me = client.get("/users/me").json()["data"]
    spec.validate_ref(me, "UserCompact")
    assert me["gid"] == sandbox.owner_gid == sandbox.user_gid(ds.contractors[0].id)
    assert me["name"] == "Zoë Müller"
    assert [w["gid"] for w in me["workspaces"]] == sandbox.workspace_gids


def test_workspaces_users_and_projects(ds: Dataset, clock: FakeClock, spec: Spec) -> None:
    with AsanaSandbox(ds, clock=clock, workspaces=2) as sandbox, _client(sandbox) as http:
        workspaces, pages = _collect(http, "/workspaces", {"limit": 1})
        assert pages == 2
        assert [w["gid"] for w in workspaces] == sandbox.workspace_gids
        for workspace in workspaces:
            spec.validate_ref(workspace, "WorkspaceCompact")
        users, _ = _collect(http, f"/workspaces/{workspaces[0]['gid']}/users", {"limit": 3, "opt_fields": "name,email"})
        assert {(u["name"], u["email"]) for u in users} == {(c.name, c.email) for c in ds.contractors}
        for user in users:
            assert set(user) == {"gid", "resource_type", "name", "email"}
            spec.validate_ref(user, "UserCompact")
        per_workspace = [
            {p["gid"] for p in _collect(http, "/projects", {"workspace": w["gid"], "limit": 4})[0]} for w in workspaces
        ]
        assert per_workspace[0]
        assert per_workspace[1]
        assert not per_workspace[0] & per_workspace[1]
        assert per_workspace[0] | per_workspace[1] == {sandbox.project_gid(p.id) for p in ds.projects}
        # Each workspace's entries are exactly those of its projects, and together they are all entries.
        totals = 0
        for workspace, projects in zip(workspaces, per_workspace, strict=True):
            items, _ = _collect(
                http,
                "/time_tracking_entries",
                {
                    "workspace": workspace["gid"],
                    "entered_on_end_date": ANCHOR.isoformat(),
                    "limit": 100,
                    "opt_fields": "duration_minutes,attributable_to",
                },
            )
            assert {i["attributable_to"]["gid"] for i in items} <= projects
            totals += sum(i["duration_minutes"] for i in items)
        assert totals == ds.total_minutes == sandbox.total_minutes()


def test_tasks_carry_project_codes_tags_and_actual_time(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset, spec: Spec
) -> None:
    fields = "name,custom_fields,custom_fields.name,custom_fields.display_value,tags.name,actual_time_minutes"
    for project in ds.projects:
        tasks, _ = _collect(
            client, "/tasks", {"project": sandbox.project_gid(project.id), "limit": 3, "opt_fields": fields}
        )
        expected = {sandbox.task_gid(t.id): t for t in ds.tasks_of(project.id)}
        assert {t["gid"] for t in tasks} == set(expected)
        for item in tasks:
            spec.validate_ref(item, "TaskCompact")
            task = expected[item["gid"]]
            codes = {f["name"]: f["display_value"] for f in item["custom_fields"]}
            assert codes == {"Project code": task.code}
            assert [tag["name"] for tag in item["tags"]] == list(task.tags)
            assert item["actual_time_minutes"] == sum(e.minutes for e in ds.entries if e.task_id == task.id)
    default = client.get("/tasks", params={"project": sandbox.project_gid("pr01"), "limit": 1}).json()["data"][0]
    assert set(default) == {"gid", "resource_type", "name", "resource_subtype", "created_by"}
    missing = client.get("/tasks", params={"limit": 5})
    assert missing.status_code == 400


# -- errors ----------------------------------------------------------------------------------------


def test_missing_or_wrong_token_is_401(sandbox: AsanaSandbox, ds: Dataset, spec: Spec) -> None:
    for token in ("", "not-the-token"):
        with _client(sandbox, token) as http:
            for path in ("/users/me", "/workspaces", f"/time_tracking_entries/{sandbox.entry_gid('e000001')}"):
                response = http.get(path)
                assert response.status_code == 401
                spec.validate(response.json(), spec.schema("ErrorResponse"))
                assert response.json()["errors"][0]["help"]


def test_plan_without_time_tracking_is_402(ds: Dataset, clock: FakeClock, spec: Spec) -> None:
    with AsanaSandbox(ds, plan_has_time_tracking=False, clock=clock) as sandbox, _client(sandbox) as http:
        task_gid = sandbox.task_gid(ds.tasks[0].id)
        for path, params in (
            ("/time_tracking_entries", _window_params(sandbox, ds, limit=10)),
            (f"/time_tracking_entries/{sandbox.entry_gid('e000001')}", {}),
            (f"/tasks/{task_gid}/time_tracking_entries", {"limit": 10}),
        ):
            response = http.get(path, params=params)
            assert response.status_code == 402
            spec.validate_ref(response.json(), "ErrorResponse")
            assert "premium" in _error_message(response)
        assert http.get("/users/me").status_code == 200
        sandbox.set_plan_has_time_tracking(True)
        assert http.get(f"/time_tracking_entries/{sandbox.entry_gid('e000001')}").status_code == 200


def test_unknown_gids_are_404(sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset) -> None:
    assert client.get("/time_tracking_entries/1209999999999999").status_code == 404
    assert client.get("/tasks/1203999999999999/time_tracking_entries", params={"limit": 5}).status_code == 404
    assert client.get("/workspaces/1200999999999999/users").status_code == 404
    assert client.get("/users/1201999999999999").status_code == 404
    unknown_ws = {"workspace": "1200999999999999", "entered_on_start_date": "2026-11-01", "limit": "5"}
    assert client.get("/time_tracking_entries", params=unknown_ws).status_code == 404
    route = client.get("/no/such/route")
    assert route.status_code == 404
    assert route.json()["errors"][0]["message"]


def test_rate_limit_answers_429_with_retry_after(ds: Dataset, clock: FakeClock, spec: Spec) -> None:
    with AsanaSandbox(ds, rate_limit_per_minute=3, clock=clock) as sandbox, _client(sandbox) as http:
        for _ in range(3):
            assert http.get("/users/me").status_code == 200
        limited = http.get("/workspaces")
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "60"
        spec.validate_ref(limited.json(), "ErrorResponse")
        assert "chill" in _error_message(limited)
        # The limit is per token: another token is not throttled (it is merely unauthorized).
        with _client(sandbox, "someone-else") as stranger:
            assert stranger.get("/users/me").status_code == 401
        clock.advance(30)
        again = http.get("/users/me")
        assert again.status_code == 429
        assert again.headers["Retry-After"] == "30"
        clock.advance(30)
        assert http.get("/users/me").status_code == 200
        assert sandbox.server.rate_limited_count == 2
        sandbox.set_rate_limit(None)
        assert all(http.get("/users/me").status_code == 200 for _ in range(10))


def test_fault_injection_fails_the_next_n_matching_requests(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset, spec: Spec
) -> None:
    params = _window_params(sandbox, ds, limit=10)
    sandbox.fail_next(asana_sandbox.ENTRIES_LIST, 2, 503, {"Retry-After": "2"})
    for _ in range(2):
        failed = client.get("/time_tracking_entries", params=params)
        assert failed.status_code == 503
        assert failed.headers["Retry-After"] == "2"
        spec.validate_ref(failed.json(), "ErrorResponse")
        assert failed.json()["errors"][0]["phrase"]
    assert client.get("/users/me").status_code == 200  # other routes are untouched
    assert client.get("/time_tracking_entries", params=params).status_code == 200
    assert sandbox.call_count(asana_sandbox.ENTRIES_LIST) == 3
    assert sandbox.call_count() == 4
    sandbox.fail_next(asana_sandbox.USERS_GET, 1, 429, {"Retry-After": "7"})
    throttled = client.get("/users/me")
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "7")
    with pytest.raises(KeyError, match="unknown route"):
        sandbox.fail_next("no.such.route", 1, 500)


# -- controls --------------------------------------------------------------------------------------


def test_edits_deletes_and_additions_are_visible(sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset) -> None:
    entry = ds.entries[10]
    gid = sandbox.entry_gid(entry.id)
    assert sandbox.total_minutes() == ds.total_minutes
    sandbox.edit_entry(gid, duration_minutes=entry.minutes + 30)
    assert client.get(f"/time_tracking_entries/{gid}").json()["data"]["duration_minutes"] == entry.minutes + 30
    assert sandbox.total_minutes() == ds.total_minutes + 30
    assert (
        sandbox.total_minutes(entry.work_date, entry.work_date) == ds.minutes_in(entry.work_date, entry.work_date) + 30
    )
    doomed = sandbox.entry_gid(ds.entries[11].id)
    sandbox.delete_entry(doomed)
    assert client.get(f"/time_tracking_entries/{doomed}").status_code == 404
    task = ds.task(entry.task_id)
    added = sandbox.add_entry(
        task_gid=sandbox.task_gid(task.id),
        entered_on=ANCHOR,
        duration_minutes=90,
        description="Late fix",
        category="Support",
    )
    items, _ = _collect(client, "/time_tracking_entries", _window_params(sandbox, ds, limit=100))
    gids = {i["gid"] for i in items}
    assert gid in gids
    assert added in gids
    assert doomed not in gids
    assert sum(i["duration_minutes"] for i in items) == sandbox.total_minutes()
    assert sandbox.total_minutes() == ds.total_minutes + 30 - ds.entries[11].minutes + 90
    fresh = client.get(f"/time_tracking_entries/{added}").json()["data"]
    assert fresh["created_by"]["gid"] == sandbox.owner_gid
    assert fresh["attributable_to"]["gid"] == sandbox.project_gid(task.project_id)
    assert fresh["categories"][0]["name"] == "Support"
    actual = client.get(f"/tasks/{sandbox.task_gid(task.id)}", params={"opt_fields": "actual_time_minutes"})
    expected = sum(e.minutes for e in ds.entries if e.task_id == task.id) + 30 + 90
    if ds.entries[11].task_id == task.id:
        expected -= ds.entries[11].minutes
    assert actual.json()["data"]["actual_time_minutes"] == expected
    sandbox.edit_entry(gid, entered_on=ANCHOR, approval_status="APPROVED")
    moved = client.get(f"/time_tracking_entries/{gid}").json()["data"]
    assert (moved["entered_on"], moved["approval_status"]) == (ANCHOR.isoformat(), "APPROVED")
    with pytest.raises(KeyError):
        sandbox.delete_entry(doomed)
    with pytest.raises(ValueError, match="greater than 0"):
        sandbox.edit_entry(gid, duration_minutes=0)


def test_concurrent_clients_see_consistent_pages(sandbox: AsanaSandbox, ds: Dataset) -> None:
    def crawl(limit: int) -> int:
        with _client(sandbox) as http:
            items, _ = _collect(http, "/time_tracking_entries", _window_params(sandbox, ds, limit=limit))
            return sum(item["duration_minutes"] for item in items)

    with ThreadPoolExecutor(max_workers=6) as pool:
        totals = list(pool.map(crawl, [17, 50, 100, 33, 64, 99]))
    assert totals == [ds.total_minutes] * 6


# -- strictness (the default mode) -----------------------------------------------------------------


def test_opt_fields_outside_an_endpoints_enum_are_refused(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset
) -> None:
    for extra in ("approval_status", "task", "billable_status", "description", "created_at"):
        params = _window_params(sandbox, ds, limit=5, opt_fields=f"duration_minutes,{extra}")
        response = client.get("/time_tracking_entries", params=params)
        assert response.status_code == 400
        assert _error_message(response) == f"opt_fields: Unknown value: {extra}"
        task_gid = sandbox.task_gid(ds.entries[0].task_id)
        per_task = client.get(f"/tasks/{task_gid}/time_tracking_entries", params={"limit": 5, "opt_fields": extra})
        assert per_task.status_code == 400
    # The single GET's enum names them all; and every endpoint checks its own enum.
    gid = sandbox.entry_gid(ds.entries[0].id)
    fields = "task,task.name,billable_status,approval_status,description,created_at"
    assert client.get(f"/time_tracking_entries/{gid}", params={"opt_fields": fields}).status_code == 200
    assert client.get("/workspaces", params={"opt_fields": "name,email"}).status_code == 400
    assert client.get("/users/me", params={"opt_fields": "name,email"}).status_code == 200
    sandbox.set_strict_opt_fields(False)
    params = _window_params(sandbox, ds, limit=5, opt_fields="duration_minutes,approval_status")
    lenient = client.get("/time_tracking_entries", params=params)
    assert lenient.status_code == 200
    assert all("approval_status" not in item for item in lenient.json()["data"])


def test_strict_rich_list_returns_the_full_object_unasked(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset, spec: Spec
) -> None:
    sandbox.set_list_full_fields(True)
    body = client.get("/time_tracking_entries", params=_window_params(sandbox, ds, limit=20, opt_fields="entered_on"))
    assert body.status_code == 200
    for item in body.json()["data"]:
        assert set(item) >= FULL_ONLY
        spec.validate_ref(item, "TimeTrackingEntryBase")


def test_the_enum_table_is_the_spec(spec: Spec) -> None:
    from connectors.sandbox._asana_opt_fields import OPT_FIELDS

    for path, allowed in OPT_FIELDS.items():
        parameters = spec.document["paths"][path]["get"]["parameters"]
        enum = next(p["schema"]["items"]["enum"] for p in parameters if p.get("name") == "opt_fields")
        assert allowed == frozenset(enum), path
    assert set(asana_sandbox.SPEC_PATHS) == set(asana_sandbox.ROUTES)


def test_offsets_expire_after_their_age(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset, clock: FakeClock
) -> None:
    params = _window_params(sandbox, ds, limit=10)
    offset = client.get("/time_tracking_entries", params=params).json()["next_page"]["offset"]
    clock.advance(60)
    assert client.get("/time_tracking_entries", params={**params, "offset": offset}).status_code == 200
    clock.advance(OFFSET_TTL_SECONDS)
    expired = client.get("/time_tracking_entries", params={**params, "offset": offset})
    assert expired.status_code == 400
    assert _error_message(expired).startswith("offset:")
    sandbox.set_offset_ttl(None)
    assert client.get("/time_tracking_entries", params={**params, "offset": offset}).status_code == 200


def test_timesheet_statuses_follow_the_entries(
    sandbox: AsanaSandbox, client: httpx.Client, ds: Dataset, spec: Spec
) -> None:
    params: dict[str, Any] = {"workspace": sandbox.workspace_gids[0], "from_date": ds.start.isoformat(), "limit": 100}
    items, _ = _collect(client, "/timesheet_approval_statuses", params)
    spec.validate(
        client.get("/timesheet_approval_statuses", params={**params, "limit": 5}).json(),
        spec.response_schema("/timesheet_approval_statuses"),
    )
    by_key = {(i["user"]["gid"], i["start_date"]): i for i in items}
    for entry in ds.entries[::50]:
        monday = entry.work_date - timedelta(days=entry.work_date.weekday())
        sheet = by_key[(sandbox.user_gid(entry.person_id), monday.isoformat())]
        assert sheet["approval_status"] == entry.approval_status
        assert sheet["end_date"] == (monday + timedelta(days=6)).isoformat()
    entry = ds.entries[0]
    sandbox.set_timesheet_status(sandbox.user_gid(entry.person_id), entry.work_date, "REJECTED")
    rejected, _ = _collect(client, "/timesheet_approval_statuses", {**params, "approval_statuses": "rejected"})
    week = (entry.work_date - timedelta(days=entry.work_date.weekday())).isoformat()
    assert (sandbox.user_gid(entry.person_id), week) in {(i["user"]["gid"], i["start_date"]) for i in rejected}
    single = client.get(f"/time_tracking_entries/{sandbox.entry_gid(entry.id)}").json()["data"]
    assert single["approval_status"] == "REJECTED"
    assert client.get("/timesheet_approval_statuses", params={"limit": 5}).status_code == 400
