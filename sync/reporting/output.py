"""Put rendered report files into a folder atomically, leaving files that already hold the same bytes alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from connectors._files import write_files
from sync.reporting.model import Period, Report, ReportTotals
from sync.reporting.render import FORMATS, normalise_formats, render_report
from sync.settings import DEFAULT_FILE_PERMISSIONS

__all__ = ["WrittenReport", "write_files", "write_report"]


@dataclass(frozen=True, slots=True)
class WrittenReport:
    period: Period
    files: tuple[Path, ...]
    totals: ReportTotals
    changed: tuple[Path, ...] = ()  # the files this write created or replaced; the rest already held these bytes


def write_report(
    report: Report,
    folder: Path,
    formats: Sequence[str] = FORMATS,
    *,
    file_mode: int = DEFAULT_FILE_PERMISSIONS,
    csv_bom: bool = True,
) -> WrittenReport:
    """Write the report files into ``folder``; every file appears complete or not at all.

    All files are rendered and staged as temporary files first, then moved into place with
    ``os.replace``; on failure the temporaries are removed and existing files stay as they were.
    A file that already holds exactly the new bytes is left alone (same inode, same mtime).
    Every file gets exactly ``file_mode`` (HOURBRIDGE_FILE_MODE): they carry billing data.
    """
    folder = Path(folder)
    chosen = normalise_formats(formats)
    outputs = [item for fmt in chosen for item in render_report(report, fmt, csv_bom=csv_bom)]
    changed = write_files(folder, outputs, mode=file_mode)
    return WrittenReport(
        period=report.period,
        files=tuple(folder / name for name, _ in outputs),
        totals=report.totals,
        changed=changed,
    )
