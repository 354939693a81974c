"""One import file read whole: its format (given or recognized), its entries and slices, or every problem."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import ClassVar

from connectors.errors import ConfigError
from connectors.imports import clockify, harvest, timesheet, toggl
from connectors.imports.common import build_entries, slices_of
from connectors.imports.config import ACCOUNT, Format, ImportOptions
from connectors.imports.problems import ImportRejected, Problem
from connectors.imports.reading import Table, UnreadableFile, read_table
from connectors.model import Coverage, Scope, Slice, TimeEntry, Window

FORMATS: dict[str, ModuleType] = {module.NAME: module for module in (clockify, toggl, harvest, timesheet)}
SOURCES = {module.NAME: module.SOURCE for module in FORMATS.values()}


@dataclass(frozen=True, slots=True)
class ImportFile:
    """A file read without a problem: what it holds as ledger entries and the slices it replaces."""

    path: Path
    format: str
    source: str
    entries: tuple[TimeEntry, ...]
    slices: tuple[Slice, ...]
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def seconds(self) -> int:
        return sum(entry.duration_seconds for entry in self.entries)

    @property
    def window(self) -> Window | None:
        if not self.slices:
            return None
        return Window(min(s.start for s in self.slices), max(s.end for s in self.slices))


def recognize(table: Table) -> str:
    """The format whose columns the header has; a clear error when none or several fit."""
    matches = [name for name, module in FORMATS.items() if module.recognizes(table)]
    if len(matches) == 1:
        return matches[0]
    shown = ", ".join(table.header[:8]) + (" …" if len(table.header) > 8 else "")
    if not matches:
        raise ImportRejected(
            table.name,
            [
                Problem(
                    1,
                    "",
                    f"not a Clockify Detailed report, a Toggl Track Detailed export, a Harvest Detailed time report "
                    f"or an hourbridge timesheet (header: {shown}); pass --format if it is one of them",
                )
            ],
        )
    raise ImportRejected(
        table.name, [Problem(1, "", f"the header fits {' and '.join(matches)}: pass --format to say which")]
    )


def read_import(path: Path, format: Format, options: ImportOptions) -> ImportFile:
    """Read and check ``path`` whole; ``ImportRejected`` lists every problem (then nothing may be written)."""
    if format != "auto" and format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}: auto, {', '.join(FORMATS)}")
    try:
        table = read_table(path, encoding=options.encoding)
    except UnreadableFile as exc:
        raise ImportRejected(path.name, [Problem(0, "", str(exc))]) from None
    except OSError as exc:
        raise ImportRejected(path.name, [Problem(0, "", f"cannot be read: {exc.strerror or exc}")]) from None
    name = recognize(table) if format == "auto" else format
    module = FORMATS[name]
    parsed = module.parse(table, options)
    if parsed.problems:
        raise ImportRejected(path.name, parsed.problems)
    slices: list[Slice] | None = None
    if options.period is not None:
        first, last = options.period
        outside = [row for row in parsed.rows if not first <= row.work_date <= last]
        if outside:
            raise ImportRejected(
                path.name,
                [
                    Problem(row.line, "", f"dated {row.work_date}, outside --from {first} --to {last}")
                    for row in outside
                ],
            )
        people = {row.person.id for row in parsed.rows} | ({options.contractor} if options.contractor else set())
        slices = [Slice(person, first, last) for person in sorted(people)]
    entries = build_entries(module.SOURCE, ACCOUNT, parsed.rows)
    covered = slices if slices is not None else slices_of(entries)
    return ImportFile(path, name, module.SOURCE, tuple(entries), tuple(covered), dict(parsed.skipped))


class FileSnapshot:
    """The rows of one read file as a source: complete only for the file's (person, dates) slices."""

    name: ClassVar[str] = "file import"

    def __init__(self, imported: ImportFile) -> None:
        self.imported = imported

    def check(self) -> None:
        return None

    def scopes(self) -> list[Scope]:
        return [Scope(self.imported.source, ACCOUNT, self.imported.path.name)]

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        yield from (entry for entry in self.imported.entries if entry.work_date in window)

    def covered(self, scope: Scope, window: Window) -> Coverage:
        return Coverage.snapshot(self.imported.slices)

    def stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return None


class NotPulled:
    """What building an import source from settings gives: nothing to pull (files come by import or inbox)."""

    name: ClassVar[str] = "file import"

    def __init__(self, source: str) -> None:
        self.source = source

    def check(self) -> None:
        return None

    def scopes(self) -> list[Scope]:
        return []

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        return iter(())

    def covered(self, scope: Scope, window: Window) -> Coverage:
        return Coverage.snapshot(())

    def stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return None
