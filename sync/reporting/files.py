"""FileSink: deliver one period to a folder as its report files and a statement per contractor."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from connectors.errors import ConfigError
from sync.reporting.model import Period, ReportLine, ReportTotals, build_report
from sync.reporting.output import write_report
from sync.reporting.statement_files import write_statement_files
from sync.reporting.statements import StatementBill, build_statements
from sync.settings import DEFAULT_FILE_PERMISSIONS, Settings

__all__ = ["FileDelivery", "FileSink"]


@dataclass(frozen=True, slots=True)
class FileDelivery:
    """What one period's delivery to the folder did, file by file, and the report's totals."""

    period: Period
    folder: Path
    written: tuple[Path, ...]  # created or replaced
    unchanged: tuple[Path, ...]  # already held exactly these bytes, left alone
    removed: tuple[Path, ...]  # statements of contractors who no longer have entries in the period
    totals: ReportTotals
    statements: int  # statements in the period (0 when statements were not asked for)

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file that now holds the period: written and unchanged."""
        return tuple(sorted(self.written + self.unchanged))


class FileSink:
    """Writes period reports (CSV / XLSX / JSON) and contractor statements into one folder, atomically.

    Which periods to write, and whether a closed period may still change, is the caller's decision:
    the sink writes what it is given.
    """

    name: ClassVar[str] = "files"

    def __init__(
        self,
        folder: Path,
        *,
        drop_descriptions: bool = False,
        file_mode: int = DEFAULT_FILE_PERMISSIONS,
        csv_bom: bool = True,
    ) -> None:
        self.folder = Path(folder)
        self.drop_descriptions = drop_descriptions
        self.file_mode = file_mode
        self.csv_bom = csv_bom

    @classmethod
    def from_settings(cls, settings: Settings) -> FileSink:
        return cls(
            settings.output_dir,
            drop_descriptions=settings.drop_descriptions,
            file_mode=settings.file_permissions,
            csv_bom=settings.csv_bom,
        )

    def check(self) -> None:
        """Raise ConfigError when the folder cannot be written (it need not exist yet)."""
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(f"HOURBRIDGE_OUTPUT_DIR {self.folder} is a file, not a folder; point it at a folder")
        existing = self.folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise ConfigError(
                f"HOURBRIDGE_OUTPUT_DIR {self.folder}: {existing} cannot be written by this user; "
                "grant write access or choose another folder"
            )

    def write_period(
        self,
        period: Period,
        lines: Iterable[ReportLine],
        *,
        formats: Sequence[str],
        statements: bool,
        bills: Mapping[str, Sequence[StatementBill]] | None = None,
    ) -> FileDelivery:
        """Write the period's report and, when ``statements``, every contractor's statement of it.

        ``bills`` (by contractor): their bills as the period's latest invoice check saw them, a line each.
        """
        lines = list(lines)
        report = write_report(
            build_report(period, lines), self.folder, formats, file_mode=self.file_mode, csv_bom=self.csv_bom
        )
        files, changed = list(report.files), set(report.changed)
        removed: tuple[Path, ...] = ()
        count = 0
        if statements:
            built = build_statements(period, lines, descriptions=not self.drop_descriptions, bills=bills)
            written = write_statement_files(
                period, built, self.folder, formats, file_mode=self.file_mode, csv_bom=self.csv_bom
            )
            files.extend(written.files)
            changed.update(written.changed)
            removed, count = written.removed, len(built)
        return FileDelivery(
            period=period,
            folder=self.folder,
            written=tuple(path for path in files if path in changed),
            unchanged=tuple(path for path in files if path not in changed),
            removed=removed,
            totals=report.totals,
            statements=count,
        )

    def close(self) -> None:
        """Nothing to release: every write opens and closes its own files."""
