"""The import stage: files of contractors' own trackers and timesheets into the ledger, as snapshots.

Every file is read and checked whole before anything is written (``read_files``); a file with any
problem is rejected with every problem listed. A checked file is written as a snapshot of its
(person, dates) slices through the ledger's ``WindowIngest``: rows new or changed get versions, rows
gone from the slices are tombstoned, and nothing outside the slices is touched. What is written is
mapped in the same statement, like pulled time, and delivered by the delivery stage, so time landing
in a closed month goes to the first open month as an adjustment, exactly as a late edit in a PM tool.

The inbox (``HOURBRIDGE_INBOX_DIR``) is the same stage over the files dropped in a folder: each one
is imported in a transaction of its own, then moved to ``processed/``, or to ``rejected/`` with a
``<file>.errors.txt`` beside it that says what to fix.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import structlog
from sqlalchemy import Connection, Engine

from connectors.errors import ConfigError, HourbridgeError
from connectors.imports import ACCOUNT, FileSnapshot, ImportFile, ImportOptions, ImportRejected, read_import
from connectors.imports.config import Format
from connectors.model import Scope
from sync.run.context import RunContext, RunError
from sync.run.ingest import ScopeResult
from sync.settings import Settings
from sync.store import ledger
from sync.store.mapped import BoundMatcher
from sync.store.runs import start_run

log = structlog.get_logger("hourbridge.imports")

PROCESSED = "processed"
REJECTED = "rejected"
ERRORS_SUFFIX = ".errors.txt"
# Names a copy in progress or an editor's scratch file carry; never imported.
_SCRATCH = (".tmp", ".part", ".partial", ".crdownload", "~", ERRORS_SUFFIX)


class FilesRejected(HourbridgeError):
    """One or more files of an import were rejected: nothing of any of them was written."""

    def __init__(self, rejected: Sequence[ImportRejected]) -> None:
        self.rejected = tuple(rejected)
        super().__init__("\n".join(r.message for r in self.rejected))
        self.action = self.rejected[0].action if self.rejected else self.action


@dataclass(frozen=True, slots=True)
class FileResult:
    """What importing one file did (or, in a dry run, would do) to the ledger."""

    file: ImportFile
    counts: ledger.IngestCounts

    def scope_result(self) -> ScopeResult:
        return ScopeResult(self.file.source, ACCOUNT, self.file.path.name, self.file.window, self.counts, imported=True)


def import_options(settings: Settings, **given: str | None) -> ImportOptions:
    """The command line's options, each falling back to its HOURBRIDGE_IMPORT_* setting."""
    first, last = given.get("first"), given.get("last")
    if bool(first) != bool(last):
        raise ConfigError("--from and --to go together")
    return ImportOptions.of(
        contractor=given.get("contractor"),
        timezone=given.get("timezone") or settings.import_timezone,
        date_order=given.get("date_order") or settings.import_date_order,
        decimal_mark=given.get("decimal_mark") or settings.import_decimal_mark,
        encoding=given.get("encoding"),
        period=(first, last) if first and last else None,
    )


def read_files(paths: Sequence[Path], format: Format, options: ImportOptions) -> list[ImportFile]:
    """Every file read and checked; ``FilesRejected`` with every problem of every bad file otherwise."""
    files: list[ImportFile] = []
    rejected: list[ImportRejected] = []
    for path in paths:
        try:
            files.append(read_import(path, format, options))
        except ImportRejected as exc:
            rejected.append(exc)
    if rejected:
        raise FilesRejected(rejected)
    return files


def write_file(
    conn: Connection, context: RunContext, run_id: int, imported: ImportFile, matcher: BoundMatcher | None
) -> ledger.IngestCounts:
    """One file as a snapshot of its slices, in the caller's transaction."""
    window = imported.window
    if window is None:  # a header without rows names no slice: there is nothing it could replace
        return ledger.IngestCounts()
    source = FileSnapshot(imported)
    scope = Scope(imported.source, ACCOUNT, imported.path.name)
    writer = ledger.WindowIngest(
        conn,
        imported.source,
        ACCOUNT,
        window,
        run_id,
        context.clock(),
        drop_descriptions=context.settings.drop_descriptions,
        matcher=matcher,
    )
    for batch in ledger.batched(source.fetch(scope, window), ledger.BATCH):
        writer.add(batch)
    return writer.close(source.covered(scope, window))


def write_files(
    context: RunContext, files: Sequence[ImportFile], matcher: BoundMatcher | None, *, dry_run: bool = False
) -> list[FileResult]:
    """Every file in one transaction, in order (a later file's slices replace an earlier one's).

    A dry run writes the same in a transaction that is rolled back, so its counts are exactly what
    the import would do; it needs no run record (one is started inside and rolled back with it).
    """
    results: list[FileResult] = []
    with context.engine.connect() as conn:
        transaction = conn.begin()
        try:
            run_id = context.run_id
            if run_id is None:
                run_id = start_run(conn, command="import --dry-run", as_of=context.as_of, now=context.clock())
            for imported in files:
                results.append(FileResult(imported, write_file(conn, context, run_id, imported, matcher)))
        except BaseException:
            transaction.rollback()
            raise
        if dry_run:
            transaction.rollback()
        else:
            transaction.commit()
    return results


# --------------------------------------------------------------------------- the inbox


@dataclass(slots=True)
class InboxResult:
    """What one pass over the inbox did: files imported (with their counts) and files rejected."""

    imported: list[FileResult] = field(default_factory=list)
    rejected: list[tuple[Path, ImportRejected]] = field(default_factory=list)
    errors: list[RunError] = field(default_factory=list)

    def scope_results(self) -> list[ScopeResult]:
        return [result.scope_result() for result in self.imported]


def inbox_files(inbox: Path, *, settle_seconds: float, now: float | None = None) -> list[tuple[Path, str | None]]:
    """(file, contractor email) of every file waiting: the inbox's own files, and those of sub-folders named
    by a contractor's email (``inbox/ada@example.com/week.csv``: a Harvest file there is Ada's time).

    Oldest first, so a corrected file dropped later replaces what an earlier one imported. Files
    modified within ``settle_seconds`` may still be being copied and wait for the next pass.
    """
    if not inbox.is_dir():
        return []
    now = now if now is not None else datetime.now().timestamp()
    found: list[tuple[float, str, Path, str | None]] = []
    for folder, contractor in [(inbox, None)] + [
        (sub, sub.name) for sub in sorted(inbox.iterdir()) if sub.is_dir() and "@" in sub.name
    ]:
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.name.startswith(".") or path.name.lower().endswith(_SCRATCH):
                continue
            try:
                modified = path.stat().st_mtime
            except OSError:  # taken away between the listing and now
                continue
            if now - modified < settle_seconds:
                continue
            found.append((modified, str(path), path, contractor))
    return [(path, contractor) for _, _, path, contractor in sorted(found)]


def import_inbox(context: RunContext, matcher: BoundMatcher | None) -> InboxResult:
    """Import every file waiting in the inbox, one transaction each, then move it out of the way."""
    settings = context.settings
    result = InboxResult()
    inbox = settings.inbox_dir
    if inbox is None:
        return result
    if context.run_id is None:
        raise ValueError("the inbox writes entry versions under a run: open one with recorded_run first")
    if not inbox.is_dir():
        # A mistyped folder must not look like an empty inbox; the sources are still pulled.
        problem = ConfigError(f"HOURBRIDGE_INBOX_DIR={inbox} is not a folder: create it or fix the setting")
        result.errors.append(RunError.of("run", None, problem))
        log.error("inbox.missing", folder=str(inbox))
        return result
    for path, contractor in inbox_files(inbox, settle_seconds=settings.inbox_settle_seconds):
        if context.should_stop():
            break
        try:
            options = import_options(settings, contractor=contractor)
            imported = read_import(path, "auto", options)
        except ImportRejected as exc:
            try:
                _reject(inbox, path, exc)
            except OSError as moving:
                result.errors.append(RunError.of("run", None, _cannot_move(inbox, path, moving)))
                break
            result.rejected.append((path, exc))
            # A run error, not a source's: a contractor fixes the file; `health` stays about the system.
            result.errors.append(RunError.of("run", None, _rejected_summary(inbox, path, exc), account=contractor))
            continue
        except HourbridgeError as exc:  # a setting (time zone, date order) an admin must fix: the file waits
            result.errors.append(RunError.of("run", None, exc))
            log.error("inbox.failed", file=path.name, error=exc.message)
            break
        with context.engine.begin() as conn:
            counts = write_file(conn, context, context.run_id, imported, matcher)
        # The ledger committed before the file moves: a crash in between imports it again, which
        # writes nothing the second time.
        result.imported.append(FileResult(imported, counts))
        try:
            moved = _move(path, inbox / PROCESSED)
        except OSError as moving:
            result.errors.append(RunError.of("run", None, _cannot_move(inbox, path, moving)))
            break
        context.heartbeat()
        log.info("inbox.imported", file=path.name, moved_to=str(moved), format=imported.format, **counts.as_dict())
    return result


def _cannot_move(inbox: Path, path: Path, exc: OSError) -> ConfigError:
    # Imported files stay where they are and are imported again next time, which writes nothing.
    return ConfigError(
        f"cannot move {path.name} out of HOURBRIDGE_INBOX_DIR={inbox} ({exc.strerror or exc}): give hourbridge "
        f"write access to the folder (uid {os.getuid()})"
    )


def _rejected_summary(inbox: Path, path: Path, exc: ImportRejected) -> HourbridgeError:
    first = exc.problems[0] if exc.problems else None
    more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
    error = HourbridgeError(
        f"{path.name} rejected and moved to {REJECTED}/: {first}{more}; what to fix is in "
        f"{REJECTED}/{path.name}{ERRORS_SUFFIX}"
    )
    error.action = exc.action
    return error


def _reject(inbox: Path, path: Path, exc: ImportRejected) -> None:
    moved = _move(path, inbox / REJECTED)
    errors = moved.with_name(moved.name + ERRORS_SUFFIX)
    lines = [
        f"{path.name} was not imported: nothing of it was written.",
        "Fix every problem below, then put the corrected file in the inbox again.",
        "",
        *(str(problem) for problem in exc.problems),
        "",
    ]
    temporary = errors.with_name(errors.name + ".tmp")
    temporary.write_text("\n".join(lines), encoding="utf-8")
    os.replace(temporary, errors)
    log.warning("inbox.rejected", file=path.name, moved_to=str(moved), problems=len(exc.problems))


def _move(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder``, never over a file of the same name (a timestamp is added then)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
        counter = 1
        while target.exists():
            target = folder / f"{path.stem}.{stamp}-{counter}{path.suffix}"
            counter += 1
    shutil.move(str(path), str(target))
    return target


# --------------------------------------------------------------------------- whole commands


@dataclass(frozen=True, slots=True)
class ImportRun:
    """What `hourbridge import` did: one result per file, and the run that recorded it (None: dry run)."""

    run_id: int | None
    files: tuple[FileResult, ...]

    @property
    def versions_written(self) -> int:
        return sum(result.counts.versions_written for result in self.files)


def run_import(
    settings: Settings,
    paths: Sequence[Path],
    *,
    format: Format = "auto",
    options: ImportOptions,
    dry_run: bool = False,
    engine: Engine | None = None,
    as_of: datetime | None = None,
) -> ImportRun:
    """`hourbridge import`: read and check every file, then write them all in one transaction, or none.

    The next `hourbridge sync` (or the worker's next round) delivers what changed.
    """
    from sync.run.context import finish_run, recorded_run
    from sync.run.mapping import adopt_mapping, load_mapping
    from sync.store.db import make_engine, require_current

    files = read_files(paths, format, options)
    engine = engine or make_engine(settings.database_url)
    # Like every command but `sync` and `db upgrade`, an import never creates a ledger by accident.
    require_current(engine)
    context = RunContext.create(settings, engine, as_of=as_of)
    if dry_run:
        return ImportRun(None, tuple(write_files(context, files, None, dry_run=True)))
    active = load_mapping(settings, engine)
    with recorded_run(context, "import") as run:
        mapping = adopt_mapping(run, active)
        results = write_files(run, files, mapping.bound)
        finish_run(
            run,
            status="ok",
            counts={"imports": {r.file.path.name: {"format": r.file.format, **r.counts.as_dict()} for r in results}},
            errors=(),
        )
        assert run.run_id is not None
        return ImportRun(run.run_id, tuple(results))
