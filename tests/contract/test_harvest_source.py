"""HarvestSource against its emulator: totals and fields, admin vs own-time coverage, deletions, 429s, strictness."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.errors import ConfigError
from connectors.harvest import HarvestConfig, HarvestSource
from connectors.model import Coverage, Slice, TimeEntry, Window
from connectors.sandbox import harvest as routes
from connectors.sandbox.dataset import Dataset
from connectors.sandbox.harvest import HarvestSandbox
from tests.fakes import FakeClock, no_sleep

from .makers_harvest import harvest_source


@pytest.fixture
def sandbox(dataset: Dataset) -> Iterator[HarvestSandbox]:
    with HarvestSandbox(dataset) as running:
        yield running


def fetch_all(source: HarvestSource, window: Window) -> list[TimeEntry]:
    return [e for s in source.scopes() for e in source.fetch(s, window)]


def test_totals_and_fields_match_the_emulator(sandbox: HarvestSandbox, dataset: Dataset) -> None:
    window = dataset.window
    with harvest_source(sandbox) as source:
        entries = fetch_all(source, window)
    assert sorted(int(e.external_id) for e in entries) == sorted(sandbox.entry_ids(window.start, window.end))
    assert str(routes._TIMER_ID) not in {e.external_id for e in entries}  # the running timer is skipped
    # Harvest answers hours with two decimals: seconds are exactly those hours, with no float drift.
    expected = sum(
        int(Decimal(str(round(Decimal(e.minutes) / 60, 2))) * 3600)
        for e in dataset.entries_in(window.start, window.end)
    )
    assert sum(e.duration_seconds for e in entries) == expected
    sample = dataset.entries[len(dataset.entries) // 2]
    entry = next(e for e in entries if e.external_id == str(routes._ENTRY_BASE + sample.index))
    project = dataset.project(sample.project_id)
    person = dataset.contractor(sample.person_id)
    assert entry.work_date == sample.work_date
    assert entry.person.id == str(sandbox.user_id(person.id)) and entry.person.email == person.email.lower()
    assert [c.kind for c in entry.containers] == ["client", "project"]
    assert entry.containers[0].name == dataset.client(project.client_id).name
    assert entry.containers[1].name == project.name
    assert entry.task is not None and entry.task.name == dataset.task(sample.task_id).name
    assert entry.custom_field_map.get("project_code") == project.code
    assert entry.description == sample.description and entry.billable == sample.billable


def test_an_admin_token_covers_the_window(sandbox: HarvestSandbox, dataset: Dataset) -> None:
    with harvest_source(sandbox) as source:
        scope = next(iter(source.scopes()))
        list(source.fetch(scope, dataset.window))
        assert source.covered(scope, dataset.window) == Coverage.complete_window()


def test_a_member_token_reads_and_covers_only_its_own_time(sandbox: HarvestSandbox, dataset: Dataset) -> None:
    window = dataset.window
    with harvest_source(sandbox, token=sandbox.member_token) as source:
        source.check()
        scope = next(iter(source.scopes()))
        entries = list(source.fetch(scope, window))
        coverage = source.covered(scope, window)
    me = sandbox.user_id(dataset.contractors[1].id)
    assert {int(e.external_id) for e in entries} == sandbox.entry_ids(window.start, window.end, user=me)
    assert coverage == Coverage.snapshot([Slice(str(me), window.start, window.end)])
    other = str(sandbox.user_id(dataset.contractors[0].id))
    assert not coverage.covers(other, window.start)  # a per-user feed never tombstones other people's time


def test_a_deleted_entry_is_gone_from_the_next_read(sandbox: HarvestSandbox, dataset: Dataset) -> None:
    window = dataset.window
    victim = min(sandbox.entry_ids(window.start, window.end))
    with harvest_source(sandbox) as source:
        before = {e.external_id for e in fetch_all(source, window)}
        sandbox.delete_entry(victim)
        after = {e.external_id for e in fetch_all(source, window)}
    assert before - after == {str(victim)}


def test_429s_are_waited_out_with_retry_after(dataset: Dataset) -> None:
    clock = FakeClock()
    with HarvestSandbox(dataset, clock=clock) as sandbox:
        settings = HarvestConfig(
            token=SecretStr(sandbox.token),
            account_id=sandbox.account_id,
            contact_email="ops@example.com",
            base_url=sandbox.base_url,
            per_page=2,
        )
        # A limiter far above Harvest's limit: the emulator's 429s and their Retry-After do the pacing.
        with HarvestSource(settings, limiter=RateLimiter(1_000_000, clock=clock), sleep=no_sleep) as source:
            entries = fetch_all(source, dataset.window)
            throttled = source.stats()["throttled"]
    assert len(entries) == len(sandbox.entry_ids(dataset.start, dataset.anchor))
    assert throttled > 0 and clock.slept >= 15 * (throttled - 1) / 2


def test_the_default_rate_stays_under_100_requests_per_15_seconds(dataset: Dataset) -> None:
    clock = FakeClock()
    with HarvestSandbox(dataset, clock=clock) as sandbox:
        settings = HarvestConfig(
            token=SecretStr(sandbox.token),
            account_id=sandbox.account_id,
            contact_email="ops@example.com",
            base_url=sandbox.base_url,
            per_page=2,
        )
        limiter = RateLimiter(settings.rate_limit_per_minute, clock=clock)
        with HarvestSource(settings, limiter=limiter, sleep=no_sleep) as source:
            fetch_all(source, dataset.window)
            assert source.stats()["throttled"] == 0
            assert source.stats()["api_calls"] > 150


@pytest.mark.parametrize(
    ("token", "account", "setting"),
    [("wrong-token", routes.ACCOUNT_ID, "HOURBRIDGE_HARVEST__TOKEN"), (None, "999", "HOURBRIDGE_HARVEST__ACCOUNT_ID")],
)
def test_a_refused_credential_names_the_setting(
    sandbox: HarvestSandbox, token: str | None, account: str, setting: str
) -> None:
    settings = HarvestConfig(
        token=SecretStr(token or sandbox.token), account_id=account, contact_email="a@b.c", base_url=sandbox.base_url
    )
    with HarvestSource(settings, sleep=no_sleep) as source, pytest.raises(ConfigError) as info:
        source.check()
    assert setting in info.value.message and "wrong-token" not in info.value.message


def test_a_missing_account_id_or_contact_is_refused_before_any_call() -> None:
    with pytest.raises(ConfigError, match="HOURBRIDGE_HARVEST__ACCOUNT_ID"):
        HarvestSource(HarvestConfig(token=SecretStr("t"), contact_email="a@b.c"))
    with pytest.raises(ConfigError, match="HOURBRIDGE_HARVEST__CONTACT_EMAIL"):
        HarvestSource(HarvestConfig(token=SecretStr("t"), account_id="1"))


def _get(sandbox: HarvestSandbox, path: str, headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
    base = {
        "Authorization": f"Bearer {sandbox.token}",
        "Harvest-Account-Id": sandbox.account_id,
        "User-Agent": "t (a@b)",
    }
    query = {k.rstrip("_"): v for k, v in params.items()}
    return httpx.get(f"{sandbox.base_url}{path}", params=query, headers={**base, **(headers or {})})


def test_the_emulator_is_strict(sandbox: HarvestSandbox) -> None:
    assert _get(sandbox, "/time_entries", from_="2026-11-01").status_code == 200
    assert _get(sandbox, "/time_entries", from_="01/11/2026").status_code == 422
    assert _get(sandbox, "/time_entries", per_page="2001").status_code == 422
    assert _get(sandbox, "/time_entries", since="2026-11-01").status_code == 422  # v1's name, not v2's
    assert _get(sandbox, "/time_entries", updated_since="2026-11-01T00:00:00").status_code == 422
    assert _get(sandbox, "/time_entries", headers={"User-Agent": ""}).status_code == 400
    assert _get(sandbox, "/time_entries", headers={"User-Agent": "python-httpx/0.28"}).status_code == 400
    assert _get(sandbox, "/time_entries", headers={"Harvest-Account-Id": ""}).status_code == 401
    assert _get(sandbox, "/time_entries", headers={"Authorization": "Bearer nope"}).status_code == 401
    member = {"Authorization": f"Bearer {sandbox.member_token}"}
    assert _get(sandbox, "/users", headers=member).status_code == 403
    assert _get(sandbox, "/time_entries", headers=member, user_id="3100001").status_code == 403


def test_cursor_links_carry_the_filters(sandbox: HarvestSandbox, dataset: Dataset) -> None:
    first = _get(sandbox, "/time_entries", per_page="5", from_=dataset.anchor.isoformat()).json()
    following = httpx.get(
        first["links"]["next"],
        headers={
            "Authorization": f"Bearer {sandbox.token}",
            "Harvest-Account-Id": sandbox.account_id,
            "User-Agent": "t (a@b)",
        },
    ).json()
    assert {e["spent_date"] for e in first["time_entries"] + following["time_entries"]} == {dataset.anchor.isoformat()}
    assert following["page"] == 2 and first["total_entries"] == following["total_entries"]


def test_calls_per_thousand_entries(sandbox: HarvestSandbox, dataset: Dataset) -> None:
    """The README's figure: users/me, one users page, one time-entry page per 2,000 entries."""
    with harvest_source(sandbox) as source:
        source.check()
        entries = fetch_all(source, dataset.window)
        calls = source.stats()["api_calls"]
    assert calls == 3 and len(entries) > 300
