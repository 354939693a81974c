"""Harvest's Detailed time report (CSV or XLSX): ``Hours`` in decimal hours, the person by first and last name.

Decimal comma with dot thousands (``2.000,0``) or the other way round, decided from every number of
the file; ``Yes``/``No`` flags; ``Project Code`` becomes the ``project_code`` custom field. The file
names people without an email: pass ``--contractor EMAIL`` so rules and payees keyed by email match.
"""

from __future__ import annotations

from connectors.imports.common import ExportColumns, Parsed, Reading, add_export_row, has_columns
from connectors.imports.config import ImportOptions
from connectors.imports.reading import Table
from connectors.imports.values import parse_date, parse_duration

NAME = "harvest"
SOURCE = "harvest_export"
LABEL = "Harvest export"
REQUIRED = ("Date", "Project", "Hours", "First Name", "Last Name")
NUMBERS = ("Hours", "Hours Rounded", "Billable Rate", "Billable Amount", "Cost Rate", "Cost Amount")


def recognizes(table: Table) -> bool:
    return all(table.index(name) is not None for name in REQUIRED) and table.index("Notes") is not None


def parse(table: Table, options: ImportOptions) -> Parsed:
    parsed = Parsed(NAME, problems=list(table.problems))
    if not has_columns(table, parsed, "a Harvest Detailed time report", REQUIRED):
        return parsed
    col = table.index
    day_at, client, project, code = col("Date"), col("Client"), col("Project"), col("Project Code")
    task, notes, hours, billable = col("Task"), col("Notes"), col("Hours"), col("Billable?", "Billable")
    first, last, email = col("First Name"), col("Last Name"), col("Email")
    columns = ExportColumns(email, first, client, project, task, notes, billable, project_code=code)
    read = Reading(table, options, parsed)
    order = read.date_order(day_at)
    mark = read.decimal_mark(*(col(name) for name in NUMBERS))
    if parsed.problems:
        return parsed
    for line, cells in table.rows:
        read.line, read.cells = line, cells
        day = read.value(day_at, lambda t: parse_date(t, order), required="the entry's date")
        seconds = read.value(hours, lambda t: parse_duration(t, mark), required="the hours worked")
        name = " ".join(part for part in (read.text(first), read.text(last)) if part)
        add_export_row(read, columns, day, seconds, name)
    return parsed
