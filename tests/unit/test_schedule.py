"""`hourbridge schedule`'s loop: cron firings, max runs, stop between runs, config errors (fake clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.errors import ConfigError, TransientError
from sync.ops.schedule import StopFlag, next_fire, run_schedule

START = datetime(2026, 11, 20, 10, 7, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = START
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


def test_next_fire_follows_the_cron_expression_in_utc() -> None:
    assert next_fire("*/30 * * * *", START) == datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    assert next_fire("*/30 * * * *", datetime(2026, 11, 20, 10, 30, tzinfo=UTC)).minute == 0


def test_runs_at_start_then_on_every_firing_until_max_runs() -> None:
    clock = FakeClock()
    started: list[datetime] = []

    def run() -> str:
        started.append(clock.now)
        clock.now += timedelta(minutes=3)  # a run takes time
        return "ok"

    outcome = run_schedule("*/30 * * * *", run, stop=StopFlag(), max_runs=3, clock=clock, sleep=clock.sleep)
    assert outcome.runs == 3 and outcome.statuses == ["ok", "ok", "ok"]
    assert started == [START, START.replace(minute=30), START.replace(hour=11, minute=0)]


def test_without_run_at_start_the_first_run_waits_for_the_schedule() -> None:
    clock = FakeClock()
    started: list[datetime] = []

    def job() -> str:
        started.append(clock.now)
        return "ok"

    run_schedule(
        "0 * * * *",
        job,
        stop=StopFlag(),
        max_runs=1,
        run_at_start=False,
        clock=clock,
        sleep=clock.sleep,
    )
    assert started == [START.replace(hour=11, minute=0)]


def test_a_stop_request_lets_the_current_run_finish_and_starts_no_other() -> None:
    clock = FakeClock()
    stop = StopFlag()
    finished: list[int] = []

    def run() -> str:
        stop.set("SIGTERM")  # arrives mid-run
        finished.append(1)
        return "ok"

    outcome = run_schedule("*/5 * * * *", run, stop=stop, clock=clock, sleep=clock.sleep)
    assert finished == [1] and outcome.runs == 1 and outcome.stopped_by == "SIGTERM"
    assert clock.slept == []


def test_a_stop_while_waiting_ends_the_loop_without_a_run() -> None:
    clock = FakeClock()
    stop = StopFlag()

    def sleep(seconds: float) -> None:
        stop.set("SIGINT")

    outcome = run_schedule("0 0 * * *", lambda: "ok", stop=stop, run_at_start=False, clock=clock, sleep=sleep)
    assert outcome.runs == 0 and outcome.stopped_by == "SIGINT"


def test_a_config_error_on_the_first_run_stops_the_loop() -> None:
    clock = FakeClock()

    def run() -> str:
        raise ConfigError("HOURBRIDGE_MAPPINGS_FILE does not exist")

    with pytest.raises(ConfigError, match="HOURBRIDGE_MAPPINGS_FILE"):
        run_schedule("*/30 * * * *", run, stop=StopFlag(), max_runs=2, clock=clock, sleep=clock.sleep)


def test_later_failures_are_recorded_and_the_next_firing_runs_again() -> None:
    clock = FakeClock()
    results = iter(["ok", "transient", "config", "ok"])

    def run() -> str:
        outcome = next(results)
        if outcome == "transient":
            raise TransientError("HTTP 503")
        if outcome == "config":
            raise ConfigError("mapping document invalid")
        return outcome

    outcome = run_schedule("*/30 * * * *", run, stop=StopFlag(), max_runs=4, clock=clock, sleep=clock.sleep)
    assert outcome.statuses == ["ok", "failed", "failed", "ok"]


def test_the_schedule_setting_rejects_a_non_cron_value(monkeypatch: pytest.MonkeyPatch) -> None:
    from sync.settings import load_settings

    monkeypatch.setenv("HOURBRIDGE_SCHEDULE", "every half hour")
    with pytest.raises(ConfigError, match="HOURBRIDGE_SCHEDULE"):
        load_settings()
