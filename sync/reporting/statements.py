"""Build a statement per contractor (their own hours, nothing about anyone else) and write it reproducibly."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sync.reporting.report import (
    FORMATS,
    Cell,
    Period,
    ReportLine,
    Table,
    Tally,
    format_hours,
    format_minutes,
    joined_names,
    normalise_formats,
    redact,
    render_csv,
    render_workbook,
    scrub_line,
    validate_lines,
    write_files,
)

__all__ = [
    "NOT_YET_CODED",
    "STATEMENTS_FOLDER",
    "Statement",
    "StatementCode",
    "StatementDay",
    "StatementEntry",
    "WrittenStatements",
    "build_statements",
    "contractor_slug",
    "statement_folder",
    "write_statement_files",
    "write_statements",
]

STATEMENTS_FOLDER = "statements"
NOT_YET_CODED = "not yet coded"

_UNSPECIFIED_REASON = "unspecified"
_SLUG_MAX = 64
_SLUG_FALLBACK = "contractor"
_SLUG_WORD_RE = re.compile(r"[a-z0-9]+")
# Only names this module can produce are ever removed from a statements folder.
_STATEMENT_FILE_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\.(?:" + "|".join(FORMATS) + ")")
# Device names Windows refuses as file names, whatever the extension (the folder may be a share).
_RESERVED_STEMS = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{n}" for n in range(10)), *(f"lpt{n}" for n in range(10))}
)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One of the contractor's own entries, with what they need to find it on their invoice."""

    work_date: date
    source: str
    task: str
    container: str
    seconds: int
    code: str | None
    code_name: str
    client: str
    description: str
    not_coded_reason: str | None  # the stable reason key while the entry has no code

    @property
    def coded(self) -> bool:
        return self.code is not None


@dataclass(frozen=True, slots=True)
class StatementDay:
    """The contractor's hours on one day under one code (``code`` None: not yet coded)."""

    work_date: date
    code: str | None
    code_name: str
    client: str
    tally: Tally


@dataclass(frozen=True, slots=True)
class StatementCode:
    """The contractor's hours under one code over the whole period."""

    code: str
    code_name: str
    client: str
    tally: Tally


@dataclass(frozen=True, slots=True)
class Statement:
    """One contractor's own hours in one period: by day and code, per code, in total, and entry by entry."""

    contractor: str  # the report's contractor name, email addresses masked
    slug: str  # file stem, unique among the period's statements
    period: Period
    days: tuple[StatementDay, ...]
    codes: tuple[StatementCode, ...]
    coded: Tally
    not_yet_coded: Tally
    total: Tally
    entries: tuple[StatementEntry, ...]
    descriptions: bool  # False: descriptions are dropped and their column is left out

    @property
    def report_name(self) -> str:
        """The period report this statement is drawn from."""
        return f"hours-{self.period.label}"

    @property
    def uncoded_entries(self) -> tuple[StatementEntry, ...]:
        return tuple(entry for entry in self.entries if not entry.coded)


@dataclass(frozen=True, slots=True)
class WrittenStatements:
    period: Period
    folder: Path  # <output folder>/statements/<period label>
    files: tuple[Path, ...]  # every file of the statements written
    changed: tuple[Path, ...]  # those created or replaced; the rest already held these bytes
    removed: tuple[Path, ...]  # statements of contractors who no longer have entries in the period


# --------------------------------------------------------------------------- model


def _text_key(value: str) -> tuple[str, str]:
    return (value.casefold(), value)


def contractor_slug(name: str) -> str:
    """A filesystem-safe file stem for a contractor: lower-case ASCII words joined by hyphens.

    Email addresses are masked first, so a stem never holds one; a name with no ASCII letters or
    digits (e.g. one written in Chinese) becomes ``contractor``.
    """
    folded = unicodedata.normalize("NFKD", redact(name).casefold()).encode("ascii", "ignore").decode("ascii")
    stem = "-".join(_SLUG_WORD_RE.findall(folded))[:_SLUG_MAX].rstrip("-") or _SLUG_FALLBACK
    return f"{stem}-{_SLUG_FALLBACK}" if stem in _RESERVED_STEMS else stem


def _unique_slugs(names: Sequence[str]) -> list[str]:
    """One stem per name, in order: the first name with a stem keeps it, later ones get ``-2``, ``-3``…"""
    bases = [contractor_slug(name) for name in names]
    slugs: list[str | None] = [None] * len(bases)
    taken: set[str] = set()
    for index, base in enumerate(bases):
        if base not in taken:
            taken.add(base)
            slugs[index] = base
    for index, base in enumerate(bases):
        if slugs[index] is None:
            number = 2
            while f"{base}-{number}" in taken:
                number += 1
            taken.add(f"{base}-{number}")
            slugs[index] = f"{base}-{number}"
    return [slug for slug in slugs if slug is not None]


def _code_texts(lines: Sequence[ReportLine]) -> tuple[str, str]:
    return joined_names(line.code_name for line in lines), joined_names(line.client for line in lines)


def _entry(line: ReportLine, descriptions: bool) -> StatementEntry:
    return StatementEntry(
        work_date=line.work_date,
        source=line.source,
        task=line.task,
        container=line.container,
        seconds=line.seconds,
        code=line.code,
        code_name=line.code_name or "",
        client=line.client or "",
        description=line.description if descriptions else "",
        not_coded_reason=None if line.mapped else (line.unmapped_reason or _UNSPECIFIED_REASON),
    )


def _statement(
    period: Period, contractor: str, slug: str, lines: Sequence[ReportLine], descriptions: bool
) -> Statement:
    by_day: dict[tuple[date, str | None], list[ReportLine]] = {}
    by_code: dict[str, list[ReportLine]] = {}
    for line in lines:
        by_day.setdefault((line.work_date, line.code), []).append(line)
        if line.code is not None:
            by_code.setdefault(line.code, []).append(line)

    days: list[StatementDay] = []
    # Within a day, codes in name order and the not-yet-coded hours last.
    for work_date, code in sorted(by_day, key=lambda k: (k[0], k[1] is None, _text_key(k[1] or ""))):
        group = by_day[(work_date, code)]
        code_name, client = _code_texts(group) if code is not None else (NOT_YET_CODED, "")
        days.append(StatementDay(work_date, code, code_name, client, Tally.of(group)))
    codes = tuple(
        StatementCode(code, *_code_texts(by_code[code]), Tally.of(by_code[code]))
        for code in sorted(by_code, key=_text_key)
    )

    coded = sum((c.tally for c in codes), Tally())
    not_yet_coded = Tally.of(line for line in lines if not line.mapped)
    total = Tally.of(lines)
    if coded + not_yet_coded != total or sum((d.tally for d in days), Tally()) != total:
        raise RuntimeError(f"statement of {contractor} for {period.label} does not add up")
    return Statement(
        contractor=contractor,
        slug=slug,
        period=period,
        days=tuple(days),
        codes=codes,
        coded=coded,
        not_yet_coded=not_yet_coded,
        total=total,
        entries=tuple(_entry(line, descriptions) for line in lines),
        descriptions=descriptions,
    )


def build_statements(period: Period, lines: Iterable[ReportLine], *, descriptions: bool = True) -> list[Statement]:
    """One statement per contractor with entries in ``period`` (coded or not), in name order.

    Lines are grouped by the contractor exactly as given, before email addresses are masked, so two
    people whose names mask alike never share a statement.
    """
    ordered = sorted(lines, key=lambda line: line.sort_key)
    validate_lines(period, ordered)
    by_contractor: dict[str, list[ReportLine]] = {}
    for line in ordered:
        by_contractor.setdefault(line.contractor, []).append(scrub_line(line))
    # The exact name breaks ties between names that read alike, so stems are assigned the same way every run.
    contractors = sorted(by_contractor, key=lambda name: (_text_key(redact(name)), name))
    shown = [redact(name) for name in contractors]
    slugs = _unique_slugs(shown)
    return [
        _statement(period, name, slug, by_contractor[key], descriptions)
        for key, name, slug in zip(contractors, shown, slugs, strict=True)
    ]


# --------------------------------------------------------------------------- tables

SUMMARY_HEADERS: tuple[str, ...] = (
    "section",
    "work_date",
    "code",
    "code_name",
    "client",
    "entries",
    "seconds",
    "minutes",
    "hours",
)


def _entry_headers(statement: Statement, *, coded_columns: bool) -> tuple[str, ...]:
    code = ("code", "code_name", "client") if coded_columns else ()
    description = ("description",) if statement.descriptions else ()
    return (
        "work_date",
        "source",
        "task",
        "container",
        *code,
        "not_coded_reason",
        *description,
        "seconds",
        "minutes",
        "hours",
    )


def _csv_headers(statement: Statement) -> tuple[str, ...]:
    description = ("description",) if statement.descriptions else ()
    return (
        "section",
        "contractor",
        "period",
        "work_date",
        "code",
        "code_name",
        "client",
        "source",
        "task",
        "container",
        "not_coded_reason",
        *description,
        "entries",
        "seconds",
        "minutes",
        "hours",
    )


Row = tuple[dict[str, Cell], bool]  # named cells, and whether the row is a (sub)total


def _tally_cells(tally: Tally) -> dict[str, Cell]:
    return {"entries": tally.entries, "seconds": tally.seconds, "minutes": tally.minutes, "hours": tally.hours}


def _summary_rows(statement: Statement) -> list[Row]:
    rows: list[Row] = [
        (
            {
                "section": "day",
                "work_date": day.work_date,
                "code": day.code,
                "code_name": day.code_name,
                "client": day.client,
                **_tally_cells(day.tally),
            },
            False,
        )
        for day in statement.days
    ]
    rows.extend(
        (
            {
                "section": "code",
                "code": code.code,
                "code_name": code.code_name,
                "client": code.client,
                **_tally_cells(code.tally),
            },
            True,
        )
        for code in statement.codes
    )
    rows.append(
        ({"section": "not_yet_coded", "code_name": NOT_YET_CODED, **_tally_cells(statement.not_yet_coded)}, True)
    )
    rows.append(({"section": "total", **_tally_cells(statement.total)}, True))
    return rows


def _entry_rows(entries: Iterable[StatementEntry], section: str) -> list[Row]:
    return [
        (
            {
                "section": section,
                "work_date": entry.work_date,
                "source": entry.source,
                "task": entry.task,
                "container": entry.container,
                "code": entry.code,
                "code_name": entry.code_name,
                "client": entry.client,
                "not_coded_reason": entry.not_coded_reason,
                "description": entry.description,
                "entries": 1,
                "seconds": entry.seconds,
                "minutes": Decimal(format_minutes(entry.seconds)),
                "hours": Decimal(format_hours(entry.seconds)),
            },
            False,
        )
        for entry in entries
    ]


def _table(headers: tuple[str, ...], rows: Sequence[Row]) -> Table:
    return Table(
        headers,
        tuple(tuple(cells.get(header) for header in headers) for cells, _ in rows),
        tuple(strong for _, strong in rows),
    )


def _header_table(statement: Statement) -> Table:
    rows: tuple[tuple[Cell, ...], ...] = (
        ("contractor", statement.contractor),
        ("period", statement.period.label),
        ("from", statement.period.start),
        ("to", statement.period.end),
        ("report", statement.report_name),
        ("entries", statement.total.entries),
        ("hours", statement.total.hours),
        ("minutes", statement.total.minutes),
        ("not_yet_coded_hours", statement.not_yet_coded.hours),
    )
    return Table(("field", "value"), rows, (False,) * len(rows))


def _csv_table(statement: Statement) -> Table:
    rows = [
        *_summary_rows(statement),
        *_entry_rows(statement.entries, "entry"),
        *_entry_rows(statement.uncoded_entries, "not_yet_coded_entry"),
    ]
    header = {"contractor": statement.contractor, "period": statement.period.label}
    return _table(_csv_headers(statement), [({**header, **cells}, strong) for cells, strong in rows])


def _render_xlsx(statement: Statement) -> bytes:
    sheets = [
        ("Statement", _header_table(statement)),
        ("Summary", _table(SUMMARY_HEADERS, _summary_rows(statement))),
        ("Entries", _table(_entry_headers(statement, coded_columns=True), _entry_rows(statement.entries, "entry"))),
        (
            "Not yet coded",
            _table(
                _entry_headers(statement, coded_columns=False),
                _entry_rows(statement.uncoded_entries, "not_yet_coded_entry"),
            ),
        ),
    ]
    title = f"Statement {statement.contractor} {statement.period.label}"
    return render_workbook(sheets, title=title, period=statement.period)


# --------------------------------------------------------------------------- JSON


def _tally_json(tally: Tally) -> dict[str, Any]:
    return {
        "entries": tally.entries,
        "seconds": tally.seconds,
        "minutes": str(tally.minutes),
        "hours": str(tally.hours),
    }


def _entry_json(entry: StatementEntry, descriptions: bool) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "work_date": entry.work_date.isoformat(),
        "source": entry.source,
        "task": entry.task,
        "container": entry.container,
        "code": entry.code,
        "code_name": entry.code_name,
        "client": entry.client,
        "not_coded_reason": entry.not_coded_reason,
        "seconds": entry.seconds,
        "minutes": format_minutes(entry.seconds),
        "hours": format_hours(entry.seconds),
    }
    if descriptions:
        payload["description"] = entry.description
    return payload


def _statement_json(statement: Statement) -> dict[str, Any]:
    period = statement.period
    return {
        "statement": {
            "contractor": statement.contractor,
            "period": {"start": period.start.isoformat(), "end": period.end.isoformat(), "label": period.label},
            "report": statement.report_name,
        },
        "totals": {
            **_tally_json(statement.total),
            "coded": _tally_json(statement.coded),
            "not_yet_coded": _tally_json(statement.not_yet_coded),
            "checks": {
                "total_equals_coded_plus_not_yet_coded": (
                    statement.total.seconds == statement.coded.seconds + statement.not_yet_coded.seconds
                ),
            },
        },
        "days": [
            {
                "work_date": day.work_date.isoformat(),
                "code": day.code,
                "code_name": day.code_name,
                "client": day.client,
                **_tally_json(day.tally),
            }
            for day in statement.days
        ],
        "codes": [
            {"code": code.code, "code_name": code.code_name, "client": code.client, **_tally_json(code.tally)}
            for code in statement.codes
        ],
        "not_yet_coded": {
            "totals": _tally_json(statement.not_yet_coded),
            "entries": [_entry_json(entry, statement.descriptions) for entry in statement.uncoded_entries],
        },
        "entries": [_entry_json(entry, statement.descriptions) for entry in statement.entries],
    }


def _render_json(statement: Statement) -> bytes:
    text = json.dumps(_statement_json(statement), sort_keys=True, indent=2, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


# --------------------------------------------------------------------------- files


def _render(statement: Statement, fmt: str) -> bytes:
    if fmt == "csv":
        return render_csv(_csv_table(statement))
    if fmt == "xlsx":
        return _render_xlsx(statement)
    return _render_json(statement)


def statement_folder(folder: Path, period: Period) -> Path:
    """Where the statements of ``period`` live under an output folder."""
    return Path(folder) / STATEMENTS_FOLDER / period.label


def _remove_stale(target: Path, keep: set[str]) -> tuple[Path, ...]:
    if not target.is_dir():
        return ()
    removed: list[Path] = []
    for path in sorted(target.iterdir()):
        if _STATEMENT_FILE_RE.fullmatch(path.name) and path.stem not in keep and not path.is_dir():
            path.unlink(missing_ok=True)
            removed.append(path)
    return tuple(removed)


def write_statement_files(
    period: Period,
    statements: Sequence[Statement],
    folder: Path,
    formats: Sequence[str] = FORMATS,
    *,
    prune: bool = True,
) -> WrittenStatements:
    """Write ``<folder>/statements/<period label>/<slug>.<ext>`` for every statement, atomically.

    With ``prune`` (``statements`` is then every statement of the period), statement files of
    contractors who no longer have entries in the period are removed; other files are never touched.
    An unchanged statement keeps its file as it was (same inode, same mtime).
    """
    chosen = normalise_formats(formats)
    slugs = [statement.slug for statement in statements]
    if len(set(slugs)) != len(slugs):
        raise ValueError("statements share a file name; pass statements built together by build_statements")
    for statement in statements:
        if statement.period != period:
            raise ValueError(f"statement of {statement.contractor} is for {statement.period.label}, not {period.label}")
    target = statement_folder(folder, period)
    outputs = [(f"{s.slug}.{fmt}", _render(s, fmt)) for s in statements for fmt in chosen]
    changed = write_files(target, outputs) if outputs else ()
    removed = _remove_stale(target, set(slugs)) if prune else ()
    return WrittenStatements(
        period=period,
        folder=target,
        files=tuple(target / name for name, _ in outputs),
        changed=changed,
        removed=removed,
    )


def write_statements(
    statements: Sequence[Statement], folder: Path, formats: Sequence[str] = FORMATS, *, prune: bool = True
) -> list[Path]:
    """Write every statement of one period under ``folder``; return their files (see write_statement_files)."""
    if not statements:
        return []
    return list(write_statement_files(statements[0].period, statements, folder, formats, prune=prune).files)
