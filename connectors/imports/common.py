"""What every format shares: reading cells with problems noted, one parsed row, people, and synthetic ids."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

from connectors.imports.config import DateOrder, DecimalMark, ImportOptions
from connectors.imports.problems import Problem
from connectors.imports.reading import Table
from connectors.imports.values import (
    AmbiguousDates,
    date_order_of,
    decimal_mark_of,
    local_instant,
    parse_flag,
    split_tags,
)
from connectors.model import Container, Person, Slice, TaskRef, TimeEntry

T = TypeVar("T")


def normalize(text: str) -> str:
    """A name as an id: NFC, trimmed, inner spaces collapsed, case folded (``Big  Company`` = ``big company``)."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


@dataclass(slots=True)
class Row:
    """One valid row of an export, before it becomes a ``TimeEntry``."""

    line: int
    work_date: date
    seconds: int
    person: Person
    client: str = ""
    project: str = ""
    project_code: str = ""
    task: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    billable: bool | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    reference: str = ""


@dataclass(slots=True)
class Parsed:
    """A file's valid rows, the problems found, and what was left out on purpose (running timers, breaks)."""

    format: str
    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


class Reading:
    """One pass over a table: cell access that notes a problem (line, column) instead of raising."""

    def __init__(self, table: Table, options: ImportOptions, parsed: Parsed) -> None:
        self.table = table
        self.options = options
        self.parsed = parsed
        self.line = 0
        self.cells: tuple[str, ...] = ()
        self._zone_asked = False

    def problem(self, index: int | None, message: str, line: int | None = None) -> None:
        column = "" if index is None else self.table.column(index)
        self.parsed.problems.append(Problem(self.line if line is None else line, column, message))

    def text(self, index: int | None) -> str:
        return "" if index is None else self.cells[index].strip()

    def value(self, index: int | None, parse: Callable[[str], T], *, required: str = "") -> T | None:
        """``parse`` of the cell; None (and a problem when ``required`` says what belongs there) when empty."""
        text = self.text(index)
        if not text:
            if required:
                self.problem(index, f"empty: {required}")
            return None
        try:
            return parse(text)
        except ValueError as exc:
            self.problem(index, str(exc))
            return None

    def date_order(self, *indexes: int | None) -> DateOrder | None:
        """The file's date order: the option, else what the file's dates make certain, else a problem."""
        if self.options.date_order is not None:
            return self.options.date_order
        texts = [cells[i] for _, cells in self.table.rows for i in indexes if i is not None]
        try:
            return date_order_of(texts)
        except AmbiguousDates as exc:
            self.parsed.problems.append(Problem(0, "", str(exc)))
        except ValueError as exc:
            self.parsed.problems.append(Problem(0, "", str(exc)))
        return None

    def decimal_mark(self, *indexes: int | None) -> DecimalMark | None:
        if self.options.decimal_mark is not None:
            return self.options.decimal_mark
        texts = [cells[i] for _, cells in self.table.rows for i in indexes if i is not None]
        try:
            return decimal_mark_of(texts)
        except ValueError as exc:
            self.parsed.problems.append(Problem(0, "", str(exc)))
            return None

    def instant(self, day: date | None, clock: time | None, index: int | None) -> datetime | None:
        """The UTC instant of a local date and time, in the option's zone; asks for one zone once per file."""
        if day is None or clock is None:
            return None
        zone = self.options.timezone
        if zone is None:
            if not self._zone_asked:
                self._zone_asked = True
                self.problem(
                    index,
                    "start and end times carry no time zone: pass --timezone with the zone of the tracker's "
                    "profile, e.g. --timezone Europe/Berlin (HOURBRIDGE_IMPORT_TIMEZONE in the inbox)",
                )
            return None
        try:
            return local_instant(day, clock, zone)
        except ValueError as exc:
            self.problem(index, str(exc))
            return None

    def person(self, email: str, name: str, email_index: int | None) -> Person | None:
        """``Person(id=email lower-cased)``; without an email, the ``--contractor`` email or the normalized name."""
        contractor = self.options.contractor
        if email:
            address = email.strip().lower()
            if "@" not in address:
                self.problem(email_index, f"{email!r} is not an email address")
                return None
            if contractor is not None and address != contractor:
                self.problem(email_index, f"this row is {address}'s time, not --contractor {contractor}'s")
                return None
            return Person(address, name or address, address)
        if contractor is not None:
            return Person(contractor, name or contractor, contractor)
        if name:
            return Person(normalize(name), name, None)
        self.problem(email_index, "no person: the row names no one (pass --contractor EMAIL)")
        return None


def has_columns(table: Table, parsed: Parsed, report: str, required: Iterable[str], *either: tuple[str, ...]) -> bool:
    """Whether an export has its ``required`` columns and one of each ``either`` group; else a line-1 problem.

    The problem names each missing column (the first name of a missing group) and says to export
    ``report`` (e.g. "a Harvest Detailed time report") again.
    """
    missing = [name for name in required if table.index(name) is None]
    missing += [names[0] for names in either if table.index(*names) is None]
    if missing:
        parsed.problems.append(Problem(1, "", f"{report} has the column(s) {', '.join(missing)}: export it again"))
    return not missing


@dataclass(frozen=True, slots=True)
class ExportColumns:
    """Where a tracker's export keeps the cells of a row's person and fields (None: the export has no such column)."""

    email: int | None
    user: int | None
    client: int | None
    project: int | None
    task: int | None
    description: int | None
    billable: int | None
    tags: int | None = None
    project_code: int | None = None


def add_export_row(
    read: Reading,
    columns: ExportColumns,
    day: date | None,
    seconds: int | None,
    name: str,
    *,
    started: datetime | None = None,
    ended: datetime | None = None,
) -> None:
    """The current line of a tracker's export as a ``Row``, once its date, seconds and person are all valid.

    ``name`` is the person's name as the export spells it; ``columns.user`` is where a missing email is
    reported when the export has no email column.
    """
    email_index = columns.email if columns.email is not None else columns.user
    person = read.person(read.text(columns.email), name, email_index)
    flag = read.value(columns.billable, parse_flag)
    if day is None or seconds is None or person is None:
        return
    read.parsed.rows.append(
        Row(
            read.line,
            day,
            seconds,
            person,
            client=read.text(columns.client),
            project=read.text(columns.project),
            project_code=read.text(columns.project_code),
            task=read.text(columns.task),
            description=read.text(columns.description),
            tags=split_tags(read.text(columns.tags)),
            billable=flag,
            started_at=started,
            ended_at=ended,
        )
    )


def duration_between(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return int((end - start) / timedelta(seconds=1))


def entry_key(source: str, row: Row) -> str:
    """The identity of a row across imports, without its occurrence index (see ``build_entries``)."""
    if row.reference:
        basis = ["ref", row.person.id, row.reference]
    else:
        basis = [
            row.person.id,
            row.work_date.isoformat(),
            normalize(row.client),
            normalize(row.project),
            normalize(row.project_code),
            normalize(row.task),
            row.description.strip(),
        ]
    return hashlib.sha256(json.dumps(basis, ensure_ascii=False).encode("utf-8")).hexdigest()[:20]


def build_entries(source: str, account: str, rows: Iterable[Row]) -> list[TimeEntry]:
    """The rows as ledger entries with synthetic ids.

    Exports carry no entry id, so the id is made of what a person would call "the same entry":
    the contractor, the work date, client, project, project code, task and description, plus the
    row's occurrence among rows identical in all of those (ordered by start time, then line). So an
    unchanged row keeps its id on every re-import; a row whose hours, times, tags or billable flag
    were corrected keeps its id too and becomes a new version of the same entry; a row whose
    description or project changed is a different entry (the old one is tombstoned, the new one
    created), which is what it is to a reader of the statement. Times are left out on purpose:
    correcting a start time must not turn one entry into a deletion plus a creation. A timesheet row
    with the contractor's own ``reference`` is identified by (contractor, reference) alone, so any
    correction of it is a new version.
    """
    groups: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        groups[entry_key(source, row)].append(row)
    entries: list[TimeEntry] = []
    for key, same in groups.items():
        same.sort(key=lambda r: (r.started_at or datetime.min.replace(tzinfo=UTC), r.line))
        for occurrence, row in enumerate(same):
            external_id = f"{key}.{occurrence}" if not row.reference else key
            entries.append(_entry(source, account, external_id, row))
    entries.sort(key=lambda e: (e.work_date, e.person.id, e.external_id))
    return entries


def _entry(source: str, account: str, external_id: str, row: Row) -> TimeEntry:
    containers: list[Container] = []
    if row.client:
        containers.append(Container("client", normalize(row.client), row.client))
    if row.project:
        containers.append(Container("project", normalize(row.project), row.project))
    custom: list[tuple[str, str]] = []
    if row.project_code:
        custom.append(("project_code", row.project_code))
    if row.reference:
        custom.append(("reference", row.reference))
    return TimeEntry(
        source=source,
        account=account,
        external_id=external_id,
        work_date=row.work_date,
        duration_seconds=row.seconds,
        person=row.person,
        task=TaskRef(row.task, row.task) if row.task else None,
        containers=tuple(containers),
        tags=row.tags,
        custom_fields=tuple(sorted(custom)),
        billable=row.billable,
        description=row.description or None,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


def slices_of(entries: Iterable[TimeEntry]) -> list[Slice]:
    """One slice per person: from their first to their last work date in the file."""
    spans: dict[str, tuple[date, date]] = {}
    for entry in entries:
        first, last = spans.get(entry.person.id, (entry.work_date, entry.work_date))
        spans[entry.person.id] = (min(first, entry.work_date), max(last, entry.work_date))
    return [Slice(person, first, last) for person, (first, last) in sorted(spans.items())]
