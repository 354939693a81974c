"""The ingest stage: pull one scope of one source window by window into the ledger, mapped as it is written."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import structlog

from connectors.base import Source, fetch_coverage
from connectors.errors import HourbridgeError
from connectors.model import Scope, TimeEntry, Window
from sync.run.context import CHUNK_DAYS, RunContext, RunError, plan_window
from sync.run.prefetch import prefetched_batches
from sync.store import ledger
from sync.store.known import live_entries
from sync.store.mapped import BoundMatcher

log = structlog.get_logger("hourbridge.run")


def chunk_days(source: object) -> int:
    return int(getattr(source, "max_window_days", CHUNK_DAYS))


@dataclass(frozen=True, slots=True)
class ScopeResult:
    """What ingesting one scope did: its planned window, the ledger counts, and the error that stopped it."""

    source: str
    account: str
    name: str
    window: Window | None
    counts: ledger.IngestCounts
    errors: tuple[RunError, ...] = ()
    # An imported file (sync/run/imports.py), not a pull: recorded apart, so `health` does not expect
    # a file every schedule interval.
    imported: bool = False

    @property
    def error(self) -> str | None:
        """The admin-readable text of the error that stopped this scope, if any."""
        return self.errors[0].message if self.errors else None


@dataclass(frozen=True, slots=True)
class SourceScopes:
    """The scopes a source lists, or the error that kept it from listing them."""

    source: str
    scopes: tuple[Scope, ...]
    error: RunError | None = None

    def failure(self) -> ScopeResult:
        """The failed listing as a scope result without a window (so status counts it as failed)."""
        return ScopeResult(self.source, "", "", None, ledger.IngestCounts(), (self.error,) if self.error else ())


def list_scopes(name: str, source: Source) -> SourceScopes:
    """Check the source and list its scopes; an error here is recorded once for the whole source."""
    try:
        source.check()
        return SourceScopes(name, tuple(source.scopes()))
    except HourbridgeError as exc:
        error = RunError.of("source", name, exc)
        log.error("source.failed", source=name, error=error.message, exc_info=True)
        return SourceScopes(name, (), error)


def ingest(context: RunContext, source: Source, scope: Scope, matcher: BoundMatcher) -> ScopeResult:
    """Pull ``scope`` from its cursor (minus the look-back) to as-of, one transaction per chunk.

    A failed chunk stops the scope: the cursor must only cover contiguous, complete scans, so the
    chunks after it wait for the next run.
    """
    if context.run_id is None:
        raise ValueError("ingest writes entry versions under a run: open one with recorded_run first")
    counts = ledger.IngestCounts()
    with context.engine.connect() as conn:
        cursor = ledger.scanned_through(conn, scope.source, scope.account)
    window = plan_window(cursor, context.as_of.date(), context.settings)
    label = f"{scope.source}:{scope.name or scope.account}"
    log.info("scope.start", source=scope.source, account=scope.account, start=str(window.start), end=str(window.end))
    for chunk in window.split(chunk_days(source)):
        if context.should_stop():
            log.info("scope.stopped", source=scope.source, account=scope.account, before=str(chunk.start))
            break
        started = time.monotonic()
        try:
            added = _ingest_chunk(context, source, scope, chunk, matcher, label)
        except HourbridgeError as exc:
            error = RunError.of("scope", scope.source, exc, window=chunk, account=scope.account)
            log.error(
                "scope.failed",
                source=scope.source,
                account=scope.account,
                chunk=str(chunk),
                error=error.message,
                exc_info=True,
            )
            return ScopeResult(scope.source, scope.account, scope.name, window, counts, (error,))
        counts.add(added)
        context.heartbeat()
        log.info(
            "window.ingested",
            source=scope.source,
            account=scope.account,
            start=str(chunk.start),
            end=str(chunk.end),
            seconds=round(time.monotonic() - started, 3),
            **added.as_dict(),
        )
    return ScopeResult(scope.source, scope.account, scope.name, window, counts)


def _ingest_chunk(
    context: RunContext, source: Source, scope: Scope, chunk: Window, matcher: BoundMatcher, label: str
) -> ledger.IngestCounts:
    assert context.run_id is not None  # checked by ingest
    # One transaction per chunk: its entries, its tombstones and the cursor commit together, or none
    # of them does.
    with context.engine.begin() as conn:
        writer = ledger.WindowIngest(
            conn,
            scope.source,
            scope.account,
            chunk,
            context.run_id,
            context.clock(),
            drop_descriptions=context.settings.drop_descriptions,
            matcher=matcher,
        )
        entries = _with_progress(context, label, _fetch(context, source, scope, chunk))
        for batch in prefetched_batches(entries, ledger.BATCH):
            writer.add(batch)
        return writer.close(fetch_coverage(source, scope, chunk))


def _fetch(context: RunContext, source: Source, scope: Scope, chunk: Window) -> Iterator[TimeEntry]:
    """The source's fetch; one that reuses stored details gets a look-up into the ledger (see KnownEntries)."""
    if not getattr(source, "uses_known_entries", False):
        return source.fetch(scope, chunk)

    def known(external_ids: Sequence[str]) -> dict[str, TimeEntry]:
        # Its own connection: it runs in the prefetch thread while the chunk's transaction writes,
        # and sees what earlier runs committed, which is what "known" means.
        with context.engine.connect() as conn:
            return live_entries(conn, scope.source, scope.account, external_ids)

    fetch = cast(Any, source).fetch  # the Source protocol's fetch does not name ``known``
    return cast(Iterator[TimeEntry], fetch(scope, chunk, known=known))


def _with_progress(context: RunContext, label: str, entries: Iterable[TimeEntry]) -> Iterator[TimeEntry]:
    if context.progress is None:
        yield from entries
        return
    for entry in entries:
        yield entry
        context.progress(label, 1)
