"""A run: pull every source window by window, map with the current document, record, and report."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import structlog
from sqlalchemy import Engine

from connectors._redact import redact
from connectors.base import Sink, Source, fetch_coverage
from connectors.errors import ConfigError, HourbridgeError
from connectors.model import Scope, TimeEntry, Window
from mappings.engine import Mapped
from sync.admin.revisions import ActiveMapping, adopt, choose_mapping, revision_document
from sync.delivery import periods
from sync.delivery.desired import Catalogs, SinkSpec
from sync.delivery.outbox import Deliverer, DeliveryResult
from sync.delivery.plan import touched_months
from sync.delivery.reconcile import Reconciliation, reconcile
from sync.reporting.files import FileDelivery, FileSink
from sync.reporting.model import Period, ReportLine, build_report
from sync.reporting.output import WrittenReport, write_report
from sync.run.factory import build_sinks, build_sources, no_source_message, sink_specs
from sync.run.prefetch import prefetched_batches
from sync.settings import Settings
from sync.store import ledger, revisions
from sync.store.db import make_engine, upgrade
from sync.store.known import live_entries
from sync.store.runs import abandon_stale_runs, finish_run, record_heartbeat, start_run

log = structlog.get_logger("hourbridge.run")

Progress = Callable[[str, int], None]
"""Called with (label, entries just ingested) as pages arrive, for progress bars."""

# Days per transaction of a scope's window. Smaller chunks keep memory flat on large accounts (the
# set of ids seen and the tombstone check are per chunk); a source that cannot filter by date says
# so with ``max_window_days`` and gets the whole window at once instead of re-reading it per chunk.
CHUNK_DAYS = 14


def chunk_days(source: object) -> int:
    return int(getattr(source, "max_window_days", CHUNK_DAYS))


@dataclass(slots=True)
class ScopeResult:
    source: str
    account: str
    name: str
    window: Window | None = None
    counts: ledger.IngestCounts = field(default_factory=ledger.IngestCounts)
    error: str | None = None


@dataclass(slots=True)
class RunResult:
    run_id: int
    as_of: datetime
    status: str
    scopes: list[ScopeResult]
    errors: list[dict[str, Any]]
    mapped: int
    reports: list[FileDelivery]
    api: dict[str, dict[str, int]]
    deliveries: dict[str, DeliveryResult] = field(default_factory=dict)

    @property
    def versions_written(self) -> int:
        return sum(s.counts.versions_written for s in self.scopes)


def load_mapping(settings: Settings, engine: Engine) -> ActiveMapping:
    """The document this run maps with; any problem stops the run before anything is written.

    The file HOURBRIDGE_MAPPINGS_FILE names when it exists, else the database's current revision
    (the precedence is documented in the README section "The mapping document").
    """
    return choose_mapping(settings, engine)


def plan_window(scanned_through: date | None, today: date, settings: Settings) -> Window:
    """``[cursor - lookback, today]``; on the first run from ``start_date`` (default today - lookback)."""
    if scanned_through is None:
        start = settings.start_date or today - timedelta(days=settings.lookback_days)
    else:
        start = min(scanned_through, today) - timedelta(days=settings.lookback_days)
        if settings.start_date is not None:
            start = max(start, settings.start_date)
    return Window(min(start, today), today)


def months_between(start: date, end: date) -> list[Period]:
    periods: list[Period] = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        periods.append(Period.month(f"{year:04d}-{month:02d}"))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return periods


class Runner:
    """Owns one run's frozen ``as_of``, its engine and its sources."""

    def __init__(
        self,
        settings: Settings,
        *,
        sources: dict[str, Source] | None = None,
        as_of: datetime | None = None,
        engine: Engine | None = None,
        progress: Progress | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sinks: dict[str, Sink] | None = None,
    ) -> None:
        self.settings = settings
        self.as_of = (as_of or clock()).astimezone(UTC)
        self._clock = clock
        self._progress = progress
        self.engine = engine or make_engine(settings.database_url)
        # Validate the mapping document first: an invalid one must stop the run before any write.
        self.mapping = load_mapping(settings, self.engine)
        self.document, self.matcher = self.mapping.document, self.mapping.matcher
        # Set by apply_mappings; code names of entries mapped by other revisions come from those.
        self.mapping_revision: int | None = self.mapping.revision
        self._revision_codes: dict[int, dict[str, str]] = {}
        self._adopted: int | None = None
        self._sources = sources
        self._sinks = sinks
        self._run_id: int | None = None
        # Months whose entries were (re)mapped by this run: their lines are planned again.
        self._remapped: set[str] = set()
        # Checked between windows: a worker asked to stop finishes the window it is in, then returns.
        self.should_stop: Callable[[], bool] = lambda: False

    def close(self) -> None:
        for source in (self._sources or {}).values():
            source.close()
        for sink in (self._sinks or {}).values():
            sink.close()

    # ------------------------------------------------------------------ the run

    def sync(
        self,
        *,
        write_reports: bool = True,
        only: Collection[tuple[str, str | None]] | None = None,
        command: str = "sync",
        deliver: bool = True,
    ) -> RunResult:
        """One run. ``only`` restricts it to (source, account) pairs (account ``None`` = every scope)."""
        # Settings an admin must fix stop the run before anything is written (like the mapping document).
        sources = self._sources
        if sources is None:
            sources = self._sources = build_sources(self.settings)
        if not sources:
            raise ConfigError(no_source_message())
        upgrade(self.engine)
        errors: list[dict[str, Any]] = []
        scope_results: list[ScopeResult] = []
        with self.engine.begin() as conn:
            abandon_stale_runs(conn, self._clock())
            run_id = start_run(conn, command=command, as_of=self.as_of, now=self._clock())
        self._run_id = run_id
        structlog.contextvars.bind_contextvars(run_id=run_id)
        try:
            # Entries are mapped as they are written, with the revision adopted before any pull.
            self.adopt_mapping()
            for name, source in sources.items():
                if only is not None and not any(wanted == name for wanted, _ in only):
                    continue
                accounts = None if only is None else {a for w, a in only if w == name}
                scope_results.extend(self._pull_source(name, source, run_id, errors, accounts))
            mapped = self.apply_mappings()
            touched = self._touched(scope_results)
            deliveries = self.deliver(touched, run_id, errors) if deliver else {}
            reports = self.write_open_reports(scope_results) if write_reports else []
        except HourbridgeError as exc:
            errors.append({"source": None, "account": None, "error": redact(exc.message), "action": exc.action.value})
            mapped, reports, deliveries = 0, [], {}
        api = {name: src.stats() for name, src in (self._sources or {}).items()}
        status = "ok" if not errors else ("partial" if any(s.error is None for s in scope_results) else "failed")
        counts = {
            "scopes": {f"{s.source}:{s.account}": s.counts.as_dict() for s in scope_results},
            "mapped": mapped,
            "api": api,
            "deliveries": {name: result.as_dict() for name, result in deliveries.items()},
        }
        with self.engine.begin() as conn:
            finish_run(conn, run_id, status=status, counts=counts, errors=errors, now=self._clock())
        log.info("run.finished", status=status, errors=len(errors), mapped=mapped)
        structlog.contextvars.unbind_contextvars("run_id")
        return RunResult(run_id, self.as_of, status, scope_results, errors, mapped, reports, api, deliveries)

    def _pull_source(
        self,
        name: str,
        source: Source,
        run_id: int,
        errors: list[dict[str, Any]],
        accounts: set[str | None] | None = None,
    ) -> list[ScopeResult]:
        results: list[ScopeResult] = []
        try:
            source.check()
            scopes = list(source.scopes())
        except HourbridgeError as exc:
            log.error("source.failed", source=name, error=redact(exc.message))
            errors.append({"source": name, "account": None, "error": redact(exc.message), "action": exc.action.value})
            results.append(ScopeResult(name, "", "", error=exc.message))
            return results
        for scope in scopes:
            if accounts is not None and None not in accounts and scope.account not in accounts:
                continue
            if self.should_stop():
                break
            results.append(self._pull_scope(source, scope, run_id, errors))
        return results

    def _pull_scope(self, source: Source, scope: Scope, run_id: int, errors: list[dict[str, Any]]) -> ScopeResult:
        result = ScopeResult(scope.source, scope.account, scope.name)
        today = self.as_of.date()
        with self.engine.connect() as conn:
            cursor = ledger.scanned_through(conn, scope.source, scope.account)
        window = plan_window(cursor, today, self.settings)
        result.window = window
        label = f"{scope.source}:{scope.name or scope.account}"
        log.info(
            "scope.start", source=scope.source, account=scope.account, start=str(window.start), end=str(window.end)
        )
        for chunk in window.split(chunk_days(source)):
            if self.should_stop():
                log.info("scope.stopped", source=scope.source, account=scope.account, before=str(chunk.start))
                break
            started = time.monotonic()
            try:
                # One transaction per chunk: its entries, its tombstones and the cursor commit together,
                # or none of them does.
                with self.engine.begin() as conn:
                    ingest = ledger.WindowIngest(
                        conn,
                        scope.source,
                        scope.account,
                        chunk,
                        run_id,
                        self._clock(),
                        drop_descriptions=self.settings.drop_descriptions,
                        mapper=self.mapping_columns,
                    )
                    entries = self._with_progress(label, self._fetch(source, scope, chunk))
                    for batch in prefetched_batches(entries, ledger.BATCH):
                        ingest.add(batch)
                    counts = ingest.close(fetch_coverage(source, scope, chunk))
            except HourbridgeError as exc:
                message = redact(exc.message)
                log.error("scope.failed", source=scope.source, account=scope.account, chunk=str(chunk), error=message)
                errors.append(
                    {
                        "source": scope.source,
                        "account": scope.account,
                        "window": [chunk.start.isoformat(), chunk.end.isoformat()],
                        "error": message,
                        "action": exc.action.value,
                    }
                )
                result.error = message
                break  # later chunks wait: the cursor must only cover contiguous, complete scans
            result.counts.add(counts)
            self.heartbeat()
            log.info(
                "window.ingested",
                source=scope.source,
                account=scope.account,
                start=str(chunk.start),
                end=str(chunk.end),
                seconds=round(time.monotonic() - started, 3),
                **counts.as_dict(),
            )
        return result

    def _fetch(self, source: Source, scope: Scope, chunk: Window) -> Iterator[TimeEntry]:
        """The source's fetch; one that reuses stored details gets a look-up into the ledger (see KnownEntries)."""
        if not getattr(source, "uses_known_entries", False):
            return source.fetch(scope, chunk)

        def known(external_ids: Sequence[str]) -> dict[str, TimeEntry]:
            # Its own connection: it runs in the prefetch thread while the window's transaction writes,
            # and sees what earlier runs committed, which is what "known" means.
            with self.engine.connect() as conn:
                return live_entries(conn, scope.source, scope.account, external_ids)

        fetch = cast(Any, source).fetch  # the Source protocol's fetch does not name ``known``
        return cast(Iterator[TimeEntry], fetch(scope, chunk, known=known))

    def _with_progress(self, label: str, entries: Iterable[TimeEntry]) -> Iterator[TimeEntry]:
        if self._progress is None:
            yield from entries
            return
        for entry in entries:
            yield entry
            self._progress(label, 1)

    def heartbeat(self) -> None:
        """Record that the current run is alive (after each committed window or delivery chunk)."""
        if self._run_id is None:
            return
        with self.engine.begin() as conn:
            record_heartbeat(conn, self._run_id, self._clock())

    # ------------------------------------------------------------------ delivery

    def _touched(self, scopes: Sequence[ScopeResult]) -> set[str]:
        touched = set(self._remapped)
        for scope in scopes:
            if scope.window is not None:
                touched.update(touched_months(scope.window.start, scope.window.end))
        return touched

    def sinks(self) -> dict[str, Sink]:
        if self._sinks is None:
            self._sinks = build_sinks(self.settings, self.engine)
        return self._sinks

    def catalogs(self) -> Catalogs:
        def load(revision_id: int) -> Any:
            with self.engine.connect() as conn:
                stored = revisions.get(conn, revision_id)
            if stored is None:
                return self.document
            return revision_document(stored).document

        return Catalogs(self.document, self.adopt_mapping(), load)

    def deliver(
        self,
        touched: Collection[str],
        run_id: int | None = None,
        errors: list[dict[str, Any]] | None = None,
        only: Collection[str] | None = None,
    ) -> dict[str, DeliveryResult]:
        """Bring every configured sink (or those in ``only``) to the desired state of the ``touched``
        months and what they imply (adjustment targets, months with open outcomes)."""
        try:
            sinks = self.sinks()
        except HourbridgeError as exc:
            if errors is None:
                raise
            errors.append({"sink": None, "error": redact(exc.message), "action": exc.action.value})
            return {}
        specs = sink_specs(self.settings)
        results: dict[str, DeliveryResult] = {}
        catalogs = self.catalogs()
        for name, sink in sinks.items():
            if only is not None and name not in only:
                continue
            spec = specs.get(name) or SinkSpec(name, "day", drop_descriptions=self.settings.drop_descriptions)
            deliverer = Deliverer(
                self.engine,
                sink,
                spec,
                gates=self.settings.delivery,
                catalogs=catalogs,
                clock=self._clock,
                run_id=run_id,
                progress=self._progress,
                heartbeat=self.heartbeat,
            )
            try:
                result = results[name] = deliverer.deliver(touched, self.as_of)
            except HourbridgeError as exc:
                message = redact(exc.message)
                log.error("delivery.failed", sink=name, error=message)
                if errors is not None:
                    errors.append({"sink": name, "error": message, "action": exc.action.value})
                continue
            if errors is not None and (result.failed or result.unknown or result.errors):
                errors.append(
                    {
                        "sink": name,
                        "error": "; ".join(result.errors) or f"{result.unknown} writes without an answer yet",
                        "action": "retry" if not result.failed else "fix",
                        "failed": result.failed,
                        "unknown": result.unknown,
                    }
                )
        return results

    def reconcile(self, label: str, *, read_sources: bool = True) -> Reconciliation:
        """The month ``label`` across the PM tools, the ledger and every sink (see sync/delivery/reconcile.py)."""
        sources: dict[str, Source] = {}
        if read_sources:
            if self._sources is None:
                self._sources = build_sources(self.settings)
            sources = self._sources
        return reconcile(
            self.engine,
            label,
            sources=sources,
            sinks=self.sinks(),
            specs=sink_specs(self.settings),
            catalogs=self.catalogs(),
            gates=self.settings.delivery,
            as_of=self.as_of,
        )

    # ------------------------------------------------------------------ mapping and reports

    def apply_mappings(self) -> int:
        """Map every live entry of the open periods whose result is missing or came from another revision.

        The settings' file is stored as a new revision first when its content changed. Entries up to
        the end of the latest closed month keep the revision that mapped them (unless they changed).
        """
        revision = self.adopt_mapping()
        digest = self.matcher.document_hash
        total = 0
        after = 0
        while True:
            with self.engine.begin() as conn:
                closed_through = periods.closed(conn).closed_through
                rows = revisions.entries_to_map(conn, revision, closed_through=closed_through, after_id=after)
                if not rows:
                    return total
                results = []
                for row in rows:
                    entry = TimeEntry.from_payload(row.payload, content_hash=row.content_hash)
                    self._remapped.add(periods.month_label(entry.work_date))
                    results.append({"id": row.id} | self.mapping_columns(entry))
                total += revisions.store_mappings(conn, revision, digest, results)
                after = rows[-1].id

    def adopt_mapping(self) -> int:
        """The revision this run maps with (the settings' file is stored first when it changed)."""
        if self._adopted is None:
            self._adopted = self.mapping_revision = adopt(self.engine, self.mapping, now=self._clock())
        return self._adopted

    def mapping_columns(self, entry: TimeEntry) -> dict[str, Any]:
        """The ledger's mapping columns for ``entry`` under the adopted revision (``EntryMapper``)."""
        outcome = self.matcher.match(entry)
        common = {"mapping_hash": self.matcher.document_hash, "mapping_revision": self.adopt_mapping()}
        if isinstance(outcome, Mapped):
            return common | {
                "code": outcome.code,
                "rule_id": outcome.rule_id,
                "contractor": outcome.contractor,
                "client": outcome.client,
                "cost_center": outcome.cost_center,
                "billable": outcome.billable,
                "unmapped_reason": None,
                "unmapped_detail": None,
            }
        return common | {
            "code": None,
            "rule_id": None,
            "contractor": outcome.contractor,
            "client": None,
            "cost_center": None,
            "billable": bool(entry.billable),
            "unmapped_reason": outcome.reason,
            "unmapped_detail": outcome.detail,
        }

    def report_lines(self, period: Period) -> list[ReportLine]:
        """Every live ledger entry of ``period``, mapped or not, as report lines."""
        with self.engine.connect() as conn:
            return [self._report_line(row) for row in ledger.live_entries_between(conn, period.start, period.end)]

    def report(self, period: Period, folder: Path | None = None) -> WrittenReport:
        report = build_report(period, self.report_lines(period))
        return write_report(report, folder or self.settings.output_dir, self.settings.report_formats)

    def write_open_reports(self, scopes: Sequence[ScopeResult]) -> list[FileDelivery]:
        """Reports and contractor statements for every open month a window of this run touched."""
        windows = [s.window for s in scopes if s.window is not None]
        if not windows:
            return []
        start = min(w.start for w in windows)
        end = max(w.end for w in windows)
        return self.write_periods(months_between(start, end))

    def write_periods(self, months: Sequence[Period]) -> list[FileDelivery]:
        """The files of each open month in ``months``, rewritten only where their content changed.

        A closed month's files stay as they were when it closed; later changes to it show as
        adjustments in the first open month."""
        with self.engine.connect() as conn:
            closed = periods.closed(conn)
        files = FileSink.from_settings(self.settings)
        return [
            files.write_period(
                p, self.report_lines(p), formats=self.settings.report_formats, statements=self.settings.statements
            )
            for p in months
            if not closed.is_closed(p.label)
        ]

    def _report_line(self, row: Any) -> ReportLine:
        payload = row.payload
        entry = TimeEntry.from_payload(payload)
        code_name = self._code_name(row.code, row.mapping_revision) if row.code else None
        container = " / ".join(c.name or c.id for c in entry.containers)
        return ReportLine(
            source=row.source,
            account=row.account,
            external_id=row.external_id,
            work_date=row.work_date,
            seconds=row.duration_seconds,
            person_id=row.person_id,
            person_name=row.person_name,
            contractor=row.contractor or row.person_name or row.person_id,
            code=row.code,
            code_name=code_name,
            client=row.client,
            cost_center=row.cost_center,
            billable=bool(row.billable),
            rule_id=row.rule_id,
            unmapped_reason=row.unmapped_reason,
            unmapped_detail=row.unmapped_detail,
            task=entry.task.name if entry.task else "",
            container=container,
            description="" if self.settings.drop_descriptions else (entry.description or ""),
            version=row.version,
        )

    def _code_name(self, code: str, revision: int | None) -> str | None:
        """The code's name in the revision that mapped the entry (the current document when that is it)."""
        if revision is None or revision == self.mapping_revision:
            found = self.document.codes.get(code)
            return found.name if found is not None else None
        names = self._revision_codes.get(revision)
        if names is None:
            with self.engine.connect() as conn:
                stored = revisions.get(conn, revision)
            codes = json.loads(stored.canonical_json).get("codes", {}) if stored is not None else {}
            names = self._revision_codes[revision] = {key: str(value.get("name")) for key, value in codes.items()}
        return names.get(code)
