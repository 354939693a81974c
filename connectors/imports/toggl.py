"""Toggl Track's Detailed export (CSV or XLSX): ISO dates, 24-hour times, ``Duration`` as h:mm:ss.

Optional ``Amount (<CUR>)``, tags joined in one cell, quotes doubled inside fields, a UTF-8 BOM.
Entries without an end or with a negative duration are running timers and are left out.
"""

from __future__ import annotations

from connectors.imports.common import ExportColumns, Parsed, Reading, add_export_row, duration_between, has_columns
from connectors.imports.config import ImportOptions
from connectors.imports.reading import Table
from connectors.imports.values import parse_clock, parse_date, parse_duration

NAME = "toggl"
SOURCE = "toggl_export"
LABEL = "Toggl Track export"
REQUIRED = ("Project", "Description", "Start date", "Start time", "Duration")


def recognizes(table: Table) -> bool:
    if any(table.index(name) is None for name in REQUIRED) or table.index("User", "Member") is None:
        return False
    return "Start date" in table.header or (
        "Duration" in table.header and not {"Duration (h)", "Duration (decimal)", "Group"} & set(table.header)
    )


def parse(table: Table, options: ImportOptions) -> Parsed:
    parsed = Parsed(NAME, problems=list(table.problems))
    if not has_columns(table, parsed, "a Toggl Track Detailed export", REQUIRED, ("User", "Member")):
        return parsed
    col = table.index
    user, email, client, project = col("User", "Member"), col("Email"), col("Client"), col("Project")
    task, description, billable, tags = col("Task"), col("Description"), col("Billable"), col("Tags")
    start_date, start_time, end_date, end_time = col("Start date"), col("Start time"), col("End date"), col("End time")
    duration = col("Duration")
    columns = ExportColumns(email, user, client, project, task, description, billable, tags=tags)
    read = Reading(table, options, parsed)
    order = read.date_order(start_date, end_date)
    if parsed.problems:
        return parsed
    for line, cells in table.rows:
        read.line, read.cells = line, cells
        if read.text(duration).startswith("-") or (end_time is not None and not read.text(end_time)):
            parsed.skip("running timers")
            continue
        day = read.value(start_date, lambda t: parse_date(t, order), required="the entry's date")
        starts = read.value(start_time, parse_clock)
        end_day = read.value(end_date, lambda t: parse_date(t, order)) or day
        ends = read.value(end_time, parse_clock)
        seconds = read.value(duration, lambda t: parse_duration(t, "."))
        started = read.instant(day, starts, start_time)
        ended = read.instant(end_day, ends, end_time)
        if seconds is None and not read.text(duration):
            seconds = duration_between(started, ended)
        add_export_row(read, columns, day, seconds, read.text(user), started=started, ended=ended)
    return parsed
