"""Prometheus metrics of runs (entries, API calls, 429s, unmapped hours, last success, duration)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from sync.invoices.match import FINDING_KINDS

# Runs take seconds to many minutes; the buckets cover a tiny scope up to a large first backfill.
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, float("inf"))


@dataclass(slots=True)
class RunMetrics:
    """One registry of hourbridge's metrics (its own registry, so tests and processes stay apart)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    entries_pulled: Counter = field(init=False)
    api_calls: Counter = field(init=False)
    rate_limited: Counter = field(init=False)
    runs: Counter = field(init=False)
    run_duration: Histogram = field(init=False)
    last_success: Gauge = field(init=False)
    unmapped_seconds: Gauge = field(init=False)
    unmapped_entries: Gauge = field(init=False)
    invoice_bills: Gauge = field(init=False)
    invoice_findings: Gauge = field(init=False)

    def __post_init__(self) -> None:
        r = self.registry
        self.entries_pulled = Counter(
            "hourbridge_entries_pulled", "Time entries read from a PM tool.", ["source"], registry=r
        )
        self.api_calls = Counter("hourbridge_api_calls", "Requests sent to a PM tool's API.", ["source"], registry=r)
        self.rate_limited = Counter(
            "hourbridge_rate_limited", "Requests a PM tool answered with 429 (rate limited).", ["source"], registry=r
        )
        self.runs = Counter(
            "hourbridge_runs", "Finished runs by command and status.", ["command", "status"], registry=r
        )
        self.run_duration = Histogram(
            "hourbridge_run_duration_seconds", "Wall time of a run.", ["command"], buckets=_DURATION_BUCKETS, registry=r
        )
        self.last_success = Gauge(
            "hourbridge_last_success_timestamp_seconds",
            "When a source's last run without errors finished (Unix time).",
            ["source"],
            registry=r,
        )
        self.unmapped_seconds = Gauge(
            "hourbridge_unmapped_seconds", "Live ledger time that no mapping rule matched.", registry=r
        )
        self.unmapped_entries = Gauge(
            "hourbridge_unmapped_entries", "Live ledger entries that no mapping rule matched.", registry=r
        )
        self.invoice_bills = Gauge(
            "hourbridge_invoice_bills_checked",
            "Contractors' bills the period's latest invoice check compared with the ledger.",
            ["period"],
            registry=r,
        )
        self.invoice_findings = Gauge(
            "hourbridge_invoice_findings",
            "Findings of the period's latest invoice check (outside tolerance), by kind.",
            ["period", "kind"],
            registry=r,
        )

    def record_invoice_check(self, period: str, bills_checked: int, findings: Iterable[str]) -> None:
        """Set the gauges of one period's invoice check: bills checked, and findings per kind (0 for the rest)."""
        self.invoice_bills.labels(period).set(bills_checked)
        counts = dict.fromkeys(FINDING_KINDS, 0)
        for kind in findings:
            counts[kind] = counts.get(kind, 0) + 1
        for kind, count in counts.items():
            self.invoice_findings.labels(period, kind).set(count)

    def record_run(
        self,
        result: Any,
        *,
        command: str,
        seconds: float,
        finished: datetime,
        totals: dict[str, int] | None = None,
    ) -> None:
        """Count one finished ``RunResult`` (typed loosely: sync.run.pipeline imports heavy modules)."""
        self.runs.labels(command, result.status).inc()
        self.run_duration.labels(command).observe(seconds)
        failed = {str(error.source) for error in result.errors if error.source}
        for scope in result.scopes:
            self.entries_pulled.labels(scope.source).inc(scope.counts.seen)
        for source in {scope.source for scope in result.scopes} - failed:
            self.last_success.labels(source).set(finished.timestamp())
        for source, stats in result.api.items():
            self.api_calls.labels(source).inc(stats.get("api_calls", 0))
            self.rate_limited.labels(source).inc(stats.get("throttled", 0))
        if totals is not None:
            self.unmapped_seconds.set(totals.get("unmapped_seconds", 0))
            self.unmapped_entries.set(totals.get("unmapped_entries", 0))

    def serve(self, port: int, address: str = "0.0.0.0") -> None:  # noqa: S104  (scraped from other hosts/pods)
        """Serve ``/metrics`` on ``port`` from a daemon thread."""
        start_http_server(port, addr=address, registry=self.registry)
