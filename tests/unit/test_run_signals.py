"""Runs an admin can watch: abandoned after a few heartbeats, interrupted, logged at the right level with run ids."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, insert, select

from connectors.errors import ConfigError
from connectors.model import Scope, TimeEntry, Window
from sync.logging import configure_logging
from sync.run.context import Heartbeat, RunInterrupted
from sync.run.pipeline import run_sync
from sync.settings import Settings
from sync.store.runs import ABANDONED_AFTER, abandon_stale_runs, recent_runs
from sync.store.tables import runs
from tests.fakes import ListSource
from tests.unit.test_delivery import DOCUMENT

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def settings_for(tmp_path: Path, **more: Any) -> Settings:
    (tmp_path / "rules.yaml").write_text(DOCUMENT, encoding="utf-8")
    return Settings(
        database_url="sqlite://", mappings_file=tmp_path / "rules.yaml", start_date=date(2026, 11, 1), **more
    )


def test_the_abandonment_delay_is_a_few_heartbeats_and_a_setting(tmp_path: Path) -> None:
    assert Settings().run_abandoned_after == ABANDONED_AFTER == timedelta(minutes=5)
    custom = settings_for(tmp_path, run_heartbeat_seconds=10, run_abandoned_heartbeats=3)
    assert custom.run_abandoned_after == timedelta(seconds=30)


def test_a_silent_run_is_abandoned_after_the_configured_delay(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as conn:
        for beat in (NOW - timedelta(seconds=31), NOW - timedelta(seconds=29)):
            conn.execute(
                insert(runs).values(
                    command="sync", status="running", as_of=NOW, started_at=NOW - timedelta(hours=1), heartbeat_at=beat
                )
            )
        shown = [r["status"] for r in recent_runs(conn, now=NOW, after=timedelta(seconds=30))]
        assert shown == ["running", "abandoned"]  # newest first; what `status` shows before any new run
        assert abandon_stale_runs(conn, NOW, timedelta(seconds=30)) == 1
        stored = conn.execute(select(runs.c.status).order_by(runs.c.id)).scalars().all()
    assert stored == ["abandoned", "running"]


def test_the_heartbeat_thread_beats_every_interval_until_stopped() -> None:
    beats: list[int] = []
    answers = iter([False, False, False, True])  # three intervals pass, then the run ends
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        return next(answers)

    Heartbeat(lambda: beats.append(1), 60, wait=wait).run()
    assert len(beats) == 3 and waits == [60, 60, 60, 60]


def test_a_run_records_its_heartbeat_from_the_thread(tmp_path: Path, sqlite_engine: Engine) -> None:
    source = ListSource()
    source.put("e1", 30, date(2026, 11, 3))
    beaten = threading.Event()
    seen: list[object] = []

    class Watching(ListSource):
        def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
            # The heartbeat thread beats once during this window (its first interval made instant).
            assert beaten.wait(10), "the heartbeat thread never beat"
            with sqlite_engine.connect() as conn:
                seen.append(conn.execute(select(runs.c.heartbeat_at)).scalar_one())
            yield from source.fetch(scope, window)

    original = Heartbeat.run

    def first_interval_instant(self: Heartbeat) -> None:
        beat, wait = self._beat, self._wait
        calls: list[float] = []

        def instant_once(seconds: float) -> bool:
            calls.append(seconds)
            return False if len(calls) == 1 else wait(seconds)

        def marked() -> None:
            beat()
            beaten.set()

        self._beat, self._wait = marked, instant_once
        original(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Heartbeat, "run", first_interval_instant)
        result = run_sync(settings_for(tmp_path), sources={"asana": Watching()}, engine=sqlite_engine, as_of=NOW)
    assert result.status == "ok" and seen[0] is not None


def test_a_stop_between_windows_records_interrupted_and_skips_later_stages(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    source = ListSource()
    for day in (3, 17, 29):
        source.put(f"e{day}", 30, date(2026, 11, day))
    calls: list[int] = []

    def stop_after_first_window() -> bool:
        calls.append(1)
        return len(calls) > 2  # the first scope and its first window start; then stop

    result = run_sync(
        settings_for(tmp_path),
        sources={"asana": source},
        engine=sqlite_engine,
        as_of=NOW,
        clock=lambda: NOW,
        should_stop=stop_after_first_window,
    )
    assert result.status == "interrupted"
    assert result.reports == () and result.deliveries == {} and result.mapped == 0
    assert result.scopes[0].counts.seen == 1
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(runs.c.status)).scalar_one() == "interrupted"


def test_a_keyboard_interrupt_mid_window_is_recorded_and_rolls_the_window_back(
    tmp_path: Path, sqlite_engine: Engine
) -> None:
    class Interrupted(ListSource):
        def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
            raise KeyboardInterrupt("SIGINT")
            yield  # a generator, like every source

    with pytest.raises(RunInterrupted) as raised:
        run_sync(settings_for(tmp_path), sources={"asana": Interrupted()}, engine=sqlite_engine, as_of=NOW)
    with sqlite_engine.connect() as conn:
        row = conn.execute(select(runs.c.id, runs.c.status, runs.c.errors)).one()
    assert raised.value.run_id == row.id and row.status == "interrupted"
    assert "rolled back" in row.errors[0]["error"]


# --------------------------------------------------------------------------- alerting: levels and run ids


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream=stream)
    try:
        yield stream
    finally:
        structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


class PooledSource(ListSource):
    """Logs from a thread pool of its own, as the connectors' detail and page fetches do."""

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda n: structlog.get_logger("connector").info("detail.fetched", n=n), range(2)))
        yield from super().fetch(scope, window)


class RefusedSource(ListSource):
    def check(self) -> None:
        raise ConfigError("HOURBRIDGE_ASANA__TOKEN was refused (HTTP 401): set a valid token")


def test_every_log_line_of_a_run_carries_its_run_id(
    tmp_path: Path, sqlite_engine: Engine, json_logs: io.StringIO
) -> None:
    source = PooledSource()
    source.put("e1", 30, date(2026, 11, 3))
    result = run_sync(settings_for(tmp_path), sources={"asana": source}, engine=sqlite_engine, write_reports=False)
    logged = lines(json_logs)
    assert any(line["event"] == "detail.fetched" for line in logged)
    assert any(line["event"] == "window.ingested" for line in logged)
    assert logged and all(line.get("run_id") == result.run_id for line in logged), logged


def test_a_failed_run_is_logged_at_error_and_an_ok_one_at_info(
    tmp_path: Path, sqlite_engine: Engine, json_logs: io.StringIO
) -> None:
    ok = ListSource()
    ok.put("e1", 30, date(2026, 11, 3))
    run_sync(settings_for(tmp_path), sources={"asana": ok}, engine=sqlite_engine, write_reports=False)
    run_sync(settings_for(tmp_path), sources={"asana": RefusedSource()}, engine=sqlite_engine, write_reports=False)
    finished = [line for line in lines(json_logs) if line["event"] == "run.finished"]
    assert [(line["status"], line["level"]) for line in finished] == [("ok", "info"), ("failed", "error")]
    assert "HTTP 401" in finished[1]["messages"][0]


def test_a_partial_run_is_logged_at_warning(tmp_path: Path, sqlite_engine: Engine, json_logs: io.StringIO) -> None:
    class Broken(ListSource):
        name = "clickup"

        def check(self) -> None:
            raise ConfigError("HOURBRIDGE_CLICKUP__TOKEN was refused (HTTP 401)")

    ok = ListSource()
    ok.put("e1", 30, date(2026, 11, 3))
    result = run_sync(
        settings_for(tmp_path), sources={"asana": ok, "clickup": Broken()}, engine=sqlite_engine, write_reports=False
    )
    [finished] = [line for line in lines(json_logs) if line["event"] == "run.finished"]
    assert result.status == "partial" and finished["level"] == "warning"


def test_worker_jobs_log_their_job_id_and_count_failures_until_a_retry_succeeds(json_logs: io.StringIO) -> None:
    from types import SimpleNamespace

    from sync.ops.worker import WorkerApp

    worker = WorkerApp(Settings(database_url="postgresql+psycopg://hb@127.0.0.1:1/hourbridge"), periodic=False)
    job = SimpleNamespace(job=SimpleNamespace(id=41, task_name="hourbridge.deliver"))
    with pytest.raises(ConfigError), worker._job(job):  # type: ignore[arg-type]
        structlog.get_logger("test").info("job.working")
        raise ConfigError("quickbooks: HOURBRIDGE_QUICKBOOKS__REALM_ID was refused")
    assert worker.failures == ["hourbridge.deliver (job 41): quickbooks: HOURBRIDGE_QUICKBOOKS__REALM_ID was refused"]
    logged = lines(json_logs)
    assert [(line["event"], line["job_id"], line["level"]) for line in logged] == [
        ("job.working", 41, "info"),
        ("worker.job_failed", 41, "error"),
    ]
    with worker._job(job):  # type: ignore[arg-type]  # the retry of the same job goes through
        pass
    assert worker.failures == []
    structlog.get_logger("test").info("after.the.job")
    assert "job_id" not in lines(json_logs)[-1]
