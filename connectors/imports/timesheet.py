"""hourbridge's own timesheet format, version 1: for contractors who keep no tracker.

One row per piece of work, CSV (UTF-8) or the first sheet of an XLSX, the header naming the columns
(any order, letter case ignored). The template and the JSON Schema of one row are published beside the
mapping schema: ``mappings/schema/timesheet-v1.csv`` and ``mappings/schema/timesheet-v1.schema.json``.

Required: ``date`` (ISO, 2026-11-03), ``contractor_email``, ``hours`` (decimal, a dot: 7.5) or
``duration`` (h:mm: 7:30), ``description`` (the tasks performed), and ``project_code`` or ``project``
(with ``client`` when the project name alone is not unique). Optional: ``contractor_name``, ``client``,
``task``, ``tags`` (comma-separated), ``billable`` (yes/no), ``start`` and ``end`` (``09:00`` in the
``--timezone`` given, or ISO with an offset: ``2026-11-03T09:00+01:00``), ``reference`` (the
contractor's own id of the row: a corrected row with the same reference is a new version of it), and
``timesheet_version`` (``1`` when present). Any other column is an error, so a misspelt one is not
silently ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from connectors.imports.common import Parsed, Reading, Row
from connectors.imports.config import ImportOptions
from connectors.imports.problems import Problem
from connectors.imports.reading import Table
from connectors.imports.values import (
    hours_seconds,
    parse_clock,
    parse_clock_duration,
    parse_date,
    parse_decimal,
    parse_flag,
    split_tags,
)

NAME = "timesheet"
SOURCE = "timesheet"
LABEL = "Timesheet (hourbridge format)"
VERSION = "1"
REQUIRED = ("date", "contractor_email", "description")
OPTIONAL = (
    "hours",
    "duration",
    "project_code",
    "client",
    "project",
    "contractor_name",
    "task",
    "tags",
    "billable",
    "start",
    "end",
    "reference",
    "timesheet_version",
)
COLUMNS = REQUIRED + OPTIONAL


def recognizes(table: Table) -> bool:
    return table.index("contractor_email") is not None and table.index("date") is not None


def _hours(text: str) -> int:
    if "," in text:
        raise ValueError(f"{text!r}: write hours with a decimal point (7.5), the timesheet format's only form")
    hours = parse_decimal(text, ".")
    if hours <= 0 or hours > 24:
        raise ValueError(f"{text!r}: hours of one row are more than 0 and at most 24")
    return hours_seconds(hours)


def _duration(text: str) -> int:
    seconds = parse_clock_duration(text)
    if seconds <= 0 or seconds > 24 * 3600:
        raise ValueError(f"{text!r}: the duration of one row is more than 0:00 and at most 24:00")
    return seconds


def _iso_date(text: str):  # type: ignore[no-untyped-def]
    if not len(text) == 10 or text[4] != "-":
        raise ValueError(f"{text!r}: write the date as YYYY-MM-DD (ISO), e.g. 2026-11-03")
    return parse_date(text, None)


def _moment(text: str) -> datetime | time:
    if "T" in text:
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO date-time (e.g. 2026-11-03T09:00+01:00)") from None
        if value.tzinfo is None:
            raise ValueError(
                f"{text!r} has no offset: add one (2026-11-03T09:00+01:00) or write 09:00 and pass --timezone"
            )
        return value.astimezone(UTC)
    return parse_clock(text)


def parse(table: Table, options: ImportOptions) -> Parsed:
    parsed = Parsed(NAME, problems=list(table.problems))
    known = {name.casefold() for name in COLUMNS}
    for index, title in enumerate(table.header):
        if title and title.casefold() not in known:
            parsed.problems.append(
                Problem(
                    1, table.column(index), f"not a column of the timesheet format v{VERSION} ({', '.join(COLUMNS)})"
                )
            )
    col = table.index
    missing = [name for name in REQUIRED if col(name) is None]
    if col("hours") is None and col("duration") is None:
        missing.append("hours or duration")
    if col("project_code") is None and col("project") is None:
        missing.append("project_code or project")
    if missing:
        parsed.problems.append(Problem(1, "", f"the timesheet needs the column(s) {', '.join(missing)}"))
    if parsed.problems:
        return parsed
    read = Reading(table, options, parsed)
    references: dict[tuple[str, str], int] = {}
    for line, cells in table.rows:
        read.line, read.cells = line, cells
        version = read.text(col("timesheet_version"))
        if version and version != VERSION:
            read.problem(
                col("timesheet_version"), f"this hourbridge reads timesheet version {VERSION}, not {version!r}"
            )
        day = read.value(col("date"), _iso_date, required="the date worked (YYYY-MM-DD)")
        hours_text, duration_text = read.text(col("hours")), read.text(col("duration"))
        seconds: int | None = None
        if hours_text and duration_text:
            read.problem(col("hours"), "give hours or duration, not both")
        elif hours_text:
            seconds = read.value(col("hours"), _hours)
        elif duration_text:
            seconds = read.value(col("duration"), _duration)
        else:
            read.problem(col("hours") if col("hours") is not None else col("duration"), "empty: the time worked")
        description = read.text(col("description"))
        if not description:
            read.problem(col("description"), "empty: describe the tasks performed")
        code, project = read.text(col("project_code")), read.text(col("project"))
        if not code and not project:
            read.problem(
                col("project_code") if col("project_code") is not None else col("project"),
                "empty: give the project code (or the project)",
            )
        email = read.text(col("contractor_email"))
        if not email:
            read.problem(col("contractor_email"), "empty: the contractor's email")
            person = None
        else:
            person = read.person(email, read.text(col("contractor_name")), col("contractor_email"))
        started = _instant(read, day, col("start"))
        ended = _instant(read, day, col("end"))
        if started is not None and ended is not None and ended <= started:
            read.problem(col("end"), "the end is not after the start")
        flag = read.value(col("billable"), parse_flag)
        reference = read.text(col("reference"))
        if reference and person is not None:
            earlier = references.setdefault((person.id, reference), line)
            if earlier != line:
                read.problem(col("reference"), f"reference {reference!r} is already used on line {earlier}")
        if day is None or seconds is None or person is None or not description or not (code or project):
            continue
        parsed.rows.append(
            Row(
                line,
                day,
                seconds,
                person,
                client=read.text(col("client")),
                project=project,
                project_code=code,
                task=read.text(col("task")),
                description=description,
                tags=split_tags(read.text(col("tags"))),
                billable=flag,
                started_at=started,
                ended_at=ended,
                reference=reference,
            )
        )
    return parsed


def _instant(read: Reading, day, index: int | None) -> datetime | None:  # type: ignore[no-untyped-def]
    moment = read.value(index, _moment)
    if isinstance(moment, datetime):
        return moment
    return read.instant(day, moment, index)
