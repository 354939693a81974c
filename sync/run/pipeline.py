"""`hourbridge sync` as a pipeline of stages: ingest every scope, remap, deliver to every sink, write the reports."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine

from connectors.base import Sink, Source
from connectors.errors import ConfigError, HourbridgeError
from sync.admin.revisions import ActiveMapping
from sync.delivery.outbox import DeliveryResult
from sync.delivery.plan import touched_months
from sync.reporting.files import FileDelivery
from sync.run.context import (
    Progress,
    RunContext,
    RunError,
    finish_run,
    months_between,
    never,
    recorded_run,
    run_status,
    utc_now,
)
from sync.run.deliver import deliver
from sync.run.factory import build_sinks, build_sources, no_source_message
from sync.run.imports import import_inbox
from sync.run.ingest import ScopeResult, ingest, list_scopes
from sync.run.mapping import RunMapping, adopt_mapping, load_mapping
from sync.run.preflight import preflight
from sync.run.remap import remap
from sync.run.report import report
from sync.settings import Settings
from sync.store.db import make_engine, upgrade

log = structlog.get_logger("hourbridge.run")

Only = Collection[tuple[str, str | None]]
"""(source, account) pairs a run is restricted to; account None means every scope of the source."""


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one run did, stage by stage, and the errors it recorded."""

    run_id: int
    as_of: datetime
    status: str
    scopes: tuple[ScopeResult, ...]
    errors: tuple[RunError, ...]
    mapped: int
    reports: tuple[FileDelivery, ...]
    api: dict[str, dict[str, int]]
    deliveries: dict[str, DeliveryResult] = field(default_factory=dict)
    # The SQLite file this run created (a new ledger), so the admin sees it was not an existing one.
    created_ledger: Path | None = None

    @property
    def versions_written(self) -> int:
        return sum(s.counts.versions_written for s in self.scopes)


def no_source_configured() -> ConfigError:
    return ConfigError(no_source_message())


def ingest_sources(
    context: RunContext, sources: Mapping[str, Source], mapping: RunMapping, only: Only | None = None
) -> list[ScopeResult]:
    """The ingest stage for every scope of every source (or those ``only`` names), one after another."""
    results: list[ScopeResult] = []
    for name, source in sources.items():
        if only is not None and not any(wanted == name for wanted, _ in only):
            continue
        accounts = None if only is None else {account for wanted, account in only if wanted == name}
        listed = list_scopes(name, source)
        if listed.error is not None:
            results.append(listed.failure())
            continue
        for scope in listed.scopes:
            if accounts is not None and None not in accounts and scope.account not in accounts:
                continue
            if context.should_stop():
                break
            results.append(ingest(context, source, scope, mapping.bound))
    return results


def run_sync(
    settings: Settings,
    *,
    sources: Mapping[str, Source] | None = None,
    sinks: Mapping[str, Sink] | None = None,
    engine: Engine | None = None,
    as_of: datetime | None = None,
    clock: Callable[[], datetime] = utc_now,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] = never,
    only: Only | None = None,
    write_reports: bool = True,
    deliver_to_sinks: bool = True,
    command: str = "sync",
) -> RunResult:
    """One run: ingest, remap, deliver, report. Sources and sinks not given are built and closed here.

    The store and the output folder are checked, the mapping document is validated and every source
    is built before anything is written: a setting an admin must fix stops the run before it starts.
    A run asked to stop (``should_stop``) finishes the window it is in, skips the stages after
    ingest, and is recorded as ``interrupted``.
    """
    engine = engine or make_engine(settings.database_url, file_mode=settings.file_permissions)
    created = preflight(settings, engine, write_reports=write_reports)
    context = RunContext.create(settings, engine, as_of=as_of, clock=clock, progress=progress, should_stop=should_stop)
    active = load_mapping(settings, engine)
    owned_sources = sources is None
    sources = build_sources(settings) if sources is None else sources
    built_sinks: dict[str, Sink] = {}
    try:
        if not sources and settings.inbox_dir is None:
            raise no_source_configured()
        upgrade(engine)
        with recorded_run(context, command) as run:
            result = _run_stages(run, active, sources, sinks, built_sinks, only, write_reports, deliver_to_sinks)
    finally:
        for owned in (*(sources.values() if owned_sources else ()), *built_sinks.values()):
            owned.close()
    if created is not None:
        log.info("ledger.created", path=str(created))
        return replace(result, created_ledger=created)
    return result


def ingest_only(
    settings: Settings,
    sources: Mapping[str, Source],
    *,
    engine: Engine,
    only: Only | None = None,
    should_stop: Callable[[], bool] = never,
    command: str = "worker",
) -> RunResult:
    """A recorded run of the ingest stage alone (a worker's pull job); the caller closes ``sources``.

    Remapping, reports and delivery are the worker's other jobs.
    """
    context = RunContext.create(settings, engine, should_stop=should_stop)
    active = load_mapping(settings, engine)
    if not sources:
        raise no_source_configured()
    upgrade(engine)
    with recorded_run(context, command) as run:
        errors: list[RunError] = []
        scopes: list[ScopeResult] = []
        try:
            scopes = ingest_sources(run, sources, adopt_mapping(run, active), only)
            errors.extend(error for scope in scopes for error in scope.errors)
        except HourbridgeError as exc:
            errors.append(RunError.of("run", None, exc))
            log.error("run.failed", error=errors[-1].message, exc_info=True)
        return _finish(run, sources, scopes, errors, 0, (), {})


def inbox_only(settings: Settings, *, engine: Engine, command: str = "worker") -> RunResult:
    """A recorded run of the inbox's import alone (a worker's inbox job); mapping, reports and delivery follow
    as the worker's other jobs."""
    context = RunContext.create(settings, engine)
    active = load_mapping(settings, engine)
    upgrade(engine)
    with recorded_run(context, command) as run:
        errors: list[RunError] = []
        scopes: list[ScopeResult] = []
        try:
            inbox = import_inbox(run, adopt_mapping(run, active).bound)
            scopes, errors = inbox.scope_results(), list(inbox.errors)
        except HourbridgeError as exc:
            errors.append(RunError.of("run", None, exc))
            log.error("run.failed", error=errors[-1].message, exc_info=True)
        return _finish(run, {}, scopes, errors, 0, (), {})


def _run_stages(
    context: RunContext,
    active: ActiveMapping,
    sources: Mapping[str, Source],
    sinks: Mapping[str, Sink] | None,
    built_sinks: dict[str, Sink],
    only: Only | None,
    write_reports: bool,
    deliver_to_sinks: bool,
) -> RunResult:
    errors: list[RunError] = []
    scopes: list[ScopeResult] = []
    mapped = 0
    reports: tuple[FileDelivery, ...] = ()
    deliveries: dict[str, DeliveryResult] = {}
    try:
        # Entries are mapped as they are written, with the revision adopted before any pull.
        mapping = adopt_mapping(context, active)
        # The inbox first: its files are snapshots of their own slices and touch no pulled scope.
        inbox = import_inbox(context, mapping.bound)
        scopes = inbox.scope_results()
        errors.extend(inbox.errors)
        scopes.extend(ingest_sources(context, sources, mapping, only))
        errors.extend(error for scope in scopes for error in scope.errors)
        if context.should_stop():
            # Asked to stop: the windows committed so far stay; mapping, delivery and reports wait
            # for the next run, which starts from the cursors.
            return _finish(context, sources, scopes, errors, 0, (), {})
        remapped = remap(context, mapping.bound)
        mapped = remapped.mapped
        touched = set(remapped.months)
        for scope in scopes:
            if scope.window is not None:
                touched.update(touched_months(scope.window.start, scope.window.end))
        if deliver_to_sinks:
            deliveries = _deliver_all(context, mapping, sinks, built_sinks, touched, errors)
        windows = [scope.window for scope in scopes if scope.window is not None]
        if write_reports and windows:
            months = months_between(min(w.start for w in windows), max(w.end for w in windows))
            reports = report(context, months).files
    except HourbridgeError as exc:
        errors.append(RunError.of("run", None, exc))
        log.error("run.failed", error=errors[-1].message, exc_info=True)
        mapped, reports, deliveries = 0, (), {}
    return _finish(context, sources, scopes, errors, mapped, reports, deliveries)


def _finish(
    context: RunContext,
    sources: Mapping[str, Source],
    scopes: list[ScopeResult],
    errors: list[RunError],
    mapped: int,
    reports: tuple[FileDelivery, ...],
    deliveries: dict[str, DeliveryResult],
) -> RunResult:
    """Record the run's status, counts and errors, and return them as its result."""
    api = {name: source.stats() for name, source in sources.items()}
    status = (
        "interrupted" if context.should_stop() else run_status(tuple(errors), [s.error is not None for s in scopes])
    )
    counts = {
        "scopes": {f"{s.source}:{s.account}": s.counts.as_dict() for s in scopes if not s.imported},
        "imports": {f"{s.source}:{s.name}": s.counts.as_dict() for s in scopes if s.imported},
        "mapped": mapped,
        "api": api,
        "deliveries": {name: result.as_dict() for name, result in deliveries.items()},
    }
    finish_run(context, status=status, counts=counts, errors=tuple(errors))
    log_finished(status, errors, mapped, deliveries)
    assert context.run_id is not None
    return RunResult(
        context.run_id, context.as_of, status, tuple(scopes), tuple(errors), mapped, reports, api, deliveries
    )


def log_finished(status: str, errors: list[RunError], mapped: int, deliveries: dict[str, DeliveryResult]) -> None:
    """The run's last log line, at the level an alert should fire on: error when failed, warning when
    partial or interrupted, info when ok (with every error's text, so one line tells what went wrong)."""
    failed_writes = {name: r.failed for name, r in deliveries.items() if r.failed}
    unknown_writes = {name: r.unknown for name, r in deliveries.items() if r.unknown}
    fields: dict[str, Any] = {"status": status, "errors": len(errors), "mapped": mapped}
    if errors:
        fields["messages"] = [f"{e.subject or e.kind}: {e.message}" for e in errors]
    if failed_writes or unknown_writes:
        fields |= {"failed_writes": failed_writes, "unknown_writes": unknown_writes}
    if status == "failed":
        log.error("run.finished", **fields)
    elif status != "ok" or failed_writes or unknown_writes:
        log.warning("run.finished", **fields)
    else:
        log.info("run.finished", **fields)


def _deliver_all(
    context: RunContext,
    mapping: RunMapping,
    sinks: Mapping[str, Sink] | None,
    built_sinks: dict[str, Sink],
    touched: Collection[str],
    errors: list[RunError],
) -> dict[str, DeliveryResult]:
    """The deliver stage for every configured sink; sinks not given are built (and later closed) here."""
    if sinks is None:
        try:
            built_sinks.update(build_sinks(context.settings, context.engine))
        except HourbridgeError as exc:
            errors.append(RunError.of("sink", None, exc))
            return {}
        sinks = built_sinks
    catalogs = mapping.catalogs(context.engine)
    results: dict[str, DeliveryResult] = {}
    for name, sink in sinks.items():
        if context.should_stop():
            break
        delivered = deliver(context, name, sink, touched, catalogs)
        errors.extend(delivered.errors)
        if delivered.result is not None:
            results[name] = delivered.result
    return results
