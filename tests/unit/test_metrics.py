"""Run metrics: entries, API calls, 429s, last success per source, duration, unmapped; served as text."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import generate_latest

from connectors.errors import Action
from sync.ops.metrics import RunMetrics
from sync.run.context import RunError
from sync.store.ledger import IngestCounts


@dataclass
class FakeScope:
    source: str
    counts: IngestCounts = field(default_factory=IngestCounts)


@dataclass
class FakeResult:
    status: str
    scopes: list[FakeScope]
    errors: list[RunError]
    api: dict[str, dict[str, int]]


def sample(metrics: RunMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


def test_a_run_is_counted_per_source() -> None:
    metrics = RunMetrics()
    ok = IngestCounts(seen=40)
    failed = IngestCounts(seen=2)
    result = FakeResult(
        status="partial",
        scopes=[FakeScope("asana", ok), FakeScope("clickup", failed)],
        errors=[RunError("scope", "clickup", None, Action.TRANSIENT, "HTTP 503", account="9")],
        api={"asana": {"api_calls": 12, "throttled": 1}, "clickup": {"api_calls": 7, "throttled": 3}},
    )
    finished = datetime(2026, 11, 20, 12, tzinfo=UTC)
    metrics.record_run(
        result,
        command="worker",
        seconds=4.2,
        finished=finished,
        totals={"unmapped_seconds": 5400, "unmapped_entries": 3},
    )
    assert sample(metrics, "hourbridge_entries_pulled_total", source="asana") == 40
    assert sample(metrics, "hourbridge_entries_pulled_total", source="clickup") == 2
    assert sample(metrics, "hourbridge_api_calls_total", source="clickup") == 7
    assert sample(metrics, "hourbridge_rate_limited_total", source="clickup") == 3
    assert sample(metrics, "hourbridge_runs_total", command="worker", status="partial") == 1
    assert sample(metrics, "hourbridge_run_duration_seconds_count", command="worker") == 1
    assert sample(metrics, "hourbridge_last_success_timestamp_seconds", source="asana") == finished.timestamp()
    # A source whose run had errors keeps its previous last success (none yet).
    assert sample(metrics, "hourbridge_last_success_timestamp_seconds", source="clickup") is None
    assert sample(metrics, "hourbridge_unmapped_seconds") == 5400
    assert sample(metrics, "hourbridge_unmapped_entries") == 3


def test_registries_are_separate_and_render_as_prometheus_text() -> None:
    first, second = RunMetrics(), RunMetrics()
    first.runs.labels("schedule", "ok").inc()
    assert sample(second, "hourbridge_runs_total", command="schedule", status="ok") is None
    text = generate_latest(first.registry).decode()
    assert 'hourbridge_runs_total{command="schedule",status="ok"} 1.0' in text


def test_an_invoice_check_sets_bills_and_findings_per_kind() -> None:
    metrics = RunMetrics()
    metrics.record_invoice_check("2026-10", 7, ["over_billed", "over_billed", "rate_differs"])
    assert sample(metrics, "hourbridge_invoice_bills_checked", period="2026-10") == 7
    assert sample(metrics, "hourbridge_invoice_findings", period="2026-10", kind="over_billed") == 2
    assert sample(metrics, "hourbridge_invoice_findings", period="2026-10", kind="billed_twice") == 0
    # A later check of the period replaces the figures; kinds no longer found go back to 0.
    metrics.record_invoice_check("2026-10", 7, [])
    assert sample(metrics, "hourbridge_invoice_findings", period="2026-10", kind="over_billed") == 0
