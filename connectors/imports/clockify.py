"""Clockify's Detailed report (CSV or XLSX): 17 or 21 columns, with or without Client, Task or Activity.

Dates are month-first (US profiles) or day-first (others), decided by the file's own dates; times are
12-hour (with or without seconds, mixed in one file) or 24-hour. The duration comes from
``Duration (h)`` (h:mm:ss, or decimal hours when the profile shows decimals), else ``Duration
(decimal)``, else end minus start. Entries of type Break are not work and are left out; running
timers (no end, no duration) too.
"""

from __future__ import annotations

from connectors.imports.common import ExportColumns, Parsed, Reading, add_export_row, duration_between, has_columns
from connectors.imports.config import ImportOptions
from connectors.imports.reading import Table
from connectors.imports.values import parse_clock, parse_date, parse_duration

NAME = "clockify"
SOURCE = "clockify_export"
LABEL = "Clockify export"
REQUIRED = ("Project", "Description", "User", "Start Date", "Start Time")


def recognizes(table: Table) -> bool:
    if any(table.index(name) is None for name in REQUIRED) or table.index("Task", "Activity") is None:
        return False
    header = set(table.header)
    return bool(header & {"Start Date", "Duration (h)", "Duration (decimal)", "Group", "Activity"})


def parse(table: Table, options: ImportOptions) -> Parsed:
    parsed = Parsed(NAME, problems=list(table.problems))
    if not has_columns(table, parsed, "a Clockify Detailed report", REQUIRED, ("Task", "Activity")):
        return parsed
    col = table.index
    project, client, description = col("Project"), col("Client"), col("Description")
    task, user, email, tags = col("Task", "Activity"), col("User"), col("Email"), col("Tags")
    kind, billable = col("Type"), col("Billable")
    start_date, start_time, end_date, end_time = col("Start Date"), col("Start Time"), col("End Date"), col("End Time")
    duration_h, duration_dec = col("Duration (h)"), col("Duration (decimal)")
    columns = ExportColumns(email, user, client, project, task, description, billable, tags=tags)
    read = Reading(table, options, parsed)
    order = read.date_order(start_date, end_date)
    mark = read.decimal_mark(duration_dec, duration_h)
    if parsed.problems:
        return parsed
    for line, cells in table.rows:
        read.line, read.cells = line, cells
        if read.text(kind).casefold() == "break":
            parsed.skip("breaks")
            continue
        day = read.value(start_date, lambda t: parse_date(t, order), required="the entry's date")
        starts = read.value(start_time, parse_clock)
        end_day = read.value(end_date, lambda t: parse_date(t, order)) or day
        ends = read.value(end_time, parse_clock)
        seconds = read.value(duration_h, lambda t: parse_duration(t, mark))
        if seconds is None and read.text(duration_h) == "":
            seconds = read.value(duration_dec, lambda t: parse_duration(t, mark))
        has_duration = bool(read.text(duration_h) or read.text(duration_dec))
        if not has_duration and not read.text(end_time):
            parsed.skip("running timers")
            continue
        started = read.instant(day, starts, start_time)
        ended = read.instant(end_day, ends, end_time)
        if not has_duration:
            seconds = duration_between(started, ended)
            if seconds is not None and seconds < 0:
                read.problem(end_time, "the end is before the start")
                continue
        add_export_row(read, columns, day, seconds, read.text(user), started=started, ended=ended)
    return parsed
