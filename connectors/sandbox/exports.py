"""Contractors' own tracker exports for the demo and tests, written deterministically from a data set.

One file per kind, in the shapes the trackers write (see the samples of real exports): a Clockify
Detailed report (21 columns, US dates, 12-hour times with and without seconds), a Toggl Track Detailed
export (UTF-8 BOM, ``Amount (USD)``, tags in one cell), a Harvest Detailed time report (decimal
comma, first and last name without an email, ``Project Code``) and an hourbridge timesheet. Each
holds one contractor's time on coded projects, in whole minutes, on dates of the data set.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from connectors.sandbox.dataset import Dataset

# Projects whose rules in the demo's mapping document match by project name in any tool.
_PROJECTS = (
    "Northwind Traders – Mobile app",
    "Globex Corporation – ERP integration",
    "Initech – DevOps retainer",
    "Contoso Ltd. – Data warehouse",
    "Łódź Design Collective – Online shop",
)
_WORK = (
    "Code review",
    'Fixed the "export" button, again',
    "Planning; notes for the team",
    "Bug triage 🐛",
    "Pairing with the client's developer",
)


@dataclass(frozen=True, slots=True)
class ExportFile:
    """One written export: its kind, where it is, whose time and how many minutes it holds."""

    kind: str
    path: Path
    contractor: str
    minutes: int
    rows: int


@dataclass(frozen=True, slots=True)
class _Row:
    day: date
    start: datetime
    minutes: int
    client: str
    project: str
    code: str
    task: str
    description: str
    billable: bool


def _rows(dataset: Dataset, rng: random.Random, count: int, last: date) -> list[_Row]:
    projects = [p for p in dataset.projects if p.name in _PROJECTS]
    rows: list[_Row] = []
    for index in range(count):
        project = projects[rng.randrange(len(projects))]
        tasks = [t for t in dataset.tasks if t.project_id == project.id]
        task = tasks[rng.randrange(len(tasks))]
        day = last - timedelta(days=rng.randrange(20))
        start = datetime(day.year, day.month, day.day, 8 + rng.randrange(8), rng.choice((0, 15, 23, 30, 45)))
        rows.append(
            _Row(
                day,
                start,
                15 * rng.randint(1, 16),
                dataset.client(project.client_id).name,
                project.name,
                project.code or "",
                task.name,
                _WORK[index % len(_WORK)],
                project.billable,
            )
        )
    rows.sort(key=lambda r: r.start)
    return rows


def _hms(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}:00"


def _csv(header: list[str], rows: list[list[str]], *, quote_all: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_exports(dataset: Dataset, folder: Path, *, seed: int = 7, rows: int = 12) -> list[ExportFile]:
    """Write the four files into ``folder`` (the Harvest one in a sub-folder named by its contractor's
    email, as the inbox expects of files without emails); the last work date is the day before the anchor."""
    rng = random.Random(seed)
    last = dataset.anchor - timedelta(days=1)
    people = dataset.contractors
    folder.mkdir(parents=True, exist_ok=True)
    written: list[ExportFile] = []

    clockify_person = people[4 % len(people)]
    data = _rows(dataset, rng, rows, last)
    header = [
        "Project", "Client", "Description", "Task", "User", "Group", "Email", "Tags", "Type", "Billable",
        "Invoiced", "Invoice ID", "Start Date", "Start Time", "End Date", "End Time", "Duration (h)",
        "Duration (decimal)", "Billable Rate (USD)", "Billable Amount (USD)", "Date of creation",
    ]  # fmt: skip
    body = []
    for i, r in enumerate(data):
        end = r.start + timedelta(minutes=r.minutes)
        clock = "%I:%M %p" if i % 3 == 0 else "%I:%M:%S %p"  # with and without seconds in one file
        body.append([
            r.project, r.client, r.description, r.task, clockify_person.name, "Contractors", clockify_person.email,
            "", "Regular", "Yes" if r.billable else "No", "No", "", r.start.strftime("%m/%d/%Y"),
            r.start.strftime(clock), end.strftime("%m/%d/%Y"), end.strftime(clock), _hms(r.minutes),
            f"{r.minutes / 60:.2f}", "100.00", f"{r.minutes * 100 / 60:.2f}", r.start.strftime("%m/%d/%Y"),
        ])  # fmt: skip
    path = folder / "clockify_detailed_report.csv"
    path.write_text(_csv(header, body, quote_all=True), encoding="utf-8")
    written.append(ExportFile("clockify", path, clockify_person.email, sum(r.minutes for r in data), len(data)))

    toggl_person = people[5 % len(people)]
    data = _rows(dataset, rng, rows, last)
    header = [
        "User", "Email", "Client", "Project", "Task", "Description", "Billable", "Start date", "Start time",
        "End date", "End time", "Duration", "Tags", "Amount (USD)",
    ]  # fmt: skip
    body = []
    for i, r in enumerate(data):
        end = r.start + timedelta(minutes=r.minutes)
        body.append([
            toggl_person.name, toggl_person.email, r.client, r.project, r.task, r.description,
            "Yes" if r.billable else "No", r.start.date().isoformat(), r.start.strftime("%H:%M:%S"),
            end.date().isoformat(), end.strftime("%H:%M:%S"), _hms(r.minutes),
            "Development, Backend" if i % 2 else "", f"{r.minutes * 90 / 60:.2f}" if r.billable else "",
        ])  # fmt: skip
    path = folder / "toggl_detailed.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _csv(header, body).encode("utf-8"))
    written.append(ExportFile("toggl", path, toggl_person.email, sum(r.minutes for r in data), len(data)))

    harvest_person = people[6 % len(people)]
    data = _rows(dataset, rng, rows, last)
    header = [
        "Date", "Client", "Project", "Project Code", "Task", "Notes", "Hours", "Billable?", "Invoiced?",
        "Approved?", "First Name", "Last Name", "Roles", "Employee?", "Billable Rate", "Billable Amount",
        "Cost Rate", "Cost Amount", "Currency", "External Reference URL",
    ]  # fmt: skip
    body = []
    first, _, family = harvest_person.name.partition(" ")
    for r in data:
        hours = f"{r.minutes / 60:.2f}".replace(".", ",")
        amount = f"{r.minutes * 1000 / 60:,.1f}".replace(",", " ").replace(".", ",").replace(" ", ".")
        body.append([
            r.day.isoformat(), r.client, r.project, r.code, r.task, r.description, hours,
            "Yes" if r.billable else "No", "No", "No", first, family, "", "No", "1.000,0", amount, "0,0", "0,0",
            "US Dollar - USD", "",
        ])  # fmt: skip
    path = folder / harvest_person.email / "harvest_time_report.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_csv(header, body), encoding="utf-8")
    written.append(ExportFile("harvest", path, harvest_person.email, sum(r.minutes for r in data), len(data)))

    sheet_person = people[7 % len(people)]
    data = _rows(dataset, rng, rows, last)
    header = ["timesheet_version", "date", "contractor_email", "contractor_name", "hours", "duration",
              "description", "project_code", "task", "billable", "reference"]  # fmt: skip
    body = []
    for i, r in enumerate(data):
        hours, duration = (f"{r.minutes / 60:.2f}", "") if i % 2 else ("", f"{r.minutes // 60}:{r.minutes % 60:02d}")
        body.append([
            "1", r.day.isoformat(), sheet_person.email, sheet_person.name, hours, duration, r.description, r.code,
            r.task, "yes" if r.billable else "no", f"TS-{i + 1:03d}",
        ])  # fmt: skip
    path = folder / "timesheet.csv"
    path.write_text(_csv(header, body), encoding="utf-8")
    written.append(ExportFile("timesheet", path, sheet_person.email, sum(r.minutes for r in data), len(data)))
    return written


ZONE = ZoneInfo("America/New_York")
"""The zone of the Clockify and Toggl profiles that wrote the files (their times carry none)."""
