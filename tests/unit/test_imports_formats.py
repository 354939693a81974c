"""File imports: the real sample exports parsed row by row, and the variants the trackers write in the wild."""
# ruff: noqa: E501  (the fixtures are CSV lines as the trackers write them, one record per line)

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.errors import ConfigError
from connectors.imports import ImportOptions, ImportRejected, read_import
from connectors.imports.values import parse_clock, parse_duration
from connectors.model import Container, TaskRef

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "samples"
BERLIN = ImportOptions.of(timezone="Europe/Berlin")


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"{path} is absent: the real export samples live in ../shared/samples beside the repository")
    return path


def write(tmp_path: Path, text: str, name: str = "export.csv", *, bom: bool = False, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode(encoding))
    return path


def rejected(path: Path, options: ImportOptions = BERLIN, format: str = "auto") -> list[str]:
    with pytest.raises(ImportRejected) as caught:
        read_import(path, format, options)  # type: ignore[arg-type]
    return [str(problem) for problem in caught.value.problems]


def file_rows(path: Path) -> list[dict[str, str]]:
    """The file's own rows, read independently of the importer (plain csv, BOM stripped)."""
    return list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8-sig"), newline="")))


# --------------------------------------------------------------------------- golden: the real samples


def test_clockify_sample_every_row_and_the_files_own_total() -> None:
    path = sample("clockify_detailed_us_12h_invoiced.csv")
    imported = read_import(path, "auto", BERLIN)
    assert imported.format == "clockify" and imported.source == "clockify_export"
    [entry] = imported.entries
    assert entry.work_date == date(2024, 10, 15)
    assert entry.duration_seconds == 1800
    assert (entry.person.id, entry.person.name, entry.person.email) == (
        "peter.test@email.test",
        "Peter Tester",
        "peter.test@email.test",
    )
    assert entry.containers == (
        Container("client", "real world client", "Real World Client"),
        Container("project", "real world project", "Real World Project"),
    )
    assert entry.task == TaskRef("A giant task", "A giant task")
    assert entry.billable is True
    # 11:00:00 AM in Berlin (CEST, UTC+2) on 15 October 2024.
    assert entry.started_at == datetime(2024, 10, 15, 9, 0, tzinfo=UTC)
    assert entry.ended_at == datetime(2024, 10, 15, 9, 30, tzinfo=UTC)
    assert entry.description is not None and "🔥 Special characters" in entry.description
    assert entry.description.startswith("\\\\ ") and entry.description.endswith("\\\\\\")
    rows = file_rows(path)
    hours, minutes, seconds = (int(x) for x in rows[0]["Duration (h)"].split(":"))
    assert imported.seconds == sum(
        int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in (r["Duration (h)"].split(":") for r in rows)
    )
    assert imported.seconds == int(sum(Decimal(r["Duration (decimal)"]) for r in rows) * 3600)
    assert (hours, minutes, seconds) == (0, 30, 0)


def test_toggl_sample_every_row_and_the_files_own_total() -> None:
    path = sample("toggl_detailed_amount_eur.csv")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    imported = read_import(path, "auto", BERLIN)
    assert imported.format == "toggl"
    by_project = {entry.container("project").name: entry for entry in imported.entries}  # type: ignore[union-attr]
    empty = by_project["Project without Client"]
    assert (empty.work_date, empty.duration_seconds, empty.person.id) == (date(2024, 3, 4), 0, "peter.test@email.test")
    assert empty.container("client") is None and empty.task is None
    assert empty.tags == ("Development", "Backend") and empty.billable is False and empty.description is None
    worked = by_project["Project for Big Company"]
    assert (worked.work_date, worked.duration_seconds) == (date(2024, 3, 4), 3601)
    assert worked.container("client") == Container("client", "big company", "Big Company")
    assert worked.task == TaskRef("Task 1", "Task 1") and worked.description == "Working hard"
    assert worked.started_at == datetime(2024, 3, 4, 9, 23, tzinfo=UTC)  # 10:23 CET
    rows = file_rows(path)
    assert len(imported.entries) == len(rows)
    assert imported.seconds == sum(
        int(h) * 3600 + int(m) * 60 + int(s) for h, m, s in (r["Duration"].split(":") for r in rows)
    )


def test_harvest_sample_every_row_and_the_files_own_total() -> None:
    path = sample("harvest_detailed_decimal_comma_eur.csv")
    imported = read_import(path, "auto", ImportOptions())  # no times in the file: no time zone needed
    assert imported.format == "harvest"
    by_project = {entry.container("project").name: entry for entry in imported.entries}  # type: ignore[union-attr]
    big = by_project["Project without Client"]
    assert (big.work_date, big.duration_seconds) == (date(2024, 3, 4), 72_000)  # "20,0" hours
    assert (big.person.id, big.person.name, big.person.email) == ("peter tester", "Peter Tester", None)
    assert big.billable is False and big.task is None and big.container("client") is None
    small = by_project["Project for Big Company"]
    assert (small.duration_seconds, small.billable, small.description) == (36, True, "Working hard")  # "0,01" h
    assert small.task == TaskRef("Task 1", "Task 1")
    rows = file_rows(path)
    assert imported.seconds == int(sum(Decimal(r["Hours"].replace(".", "").replace(",", ".")) for r in rows) * 3600)
    # With the contractor's email the person is keyed by it, as the tracker conventions say.
    named = read_import(path, "auto", ImportOptions.of(contractor="Peter.Test@email.test"))
    assert {e.person.id for e in named.entries} == {"peter.test@email.test"}
    assert {e.person.name for e in named.entries} == {"Peter Tester"}


def test_times_without_a_zone_ask_for_one() -> None:
    problems = rejected(sample("toggl_detailed_amount_eur.csv"), ImportOptions())
    assert len(problems) == 1 and "--timezone" in problems[0] and "line 2" in problems[0]


# --------------------------------------------------------------------------- Clockify variants

CLOCKIFY_17 = """Project,Description,Activity,User,Group,Email,Tags,Billable,Start Date,Start Time,End Date,End Time,Duration (h),Duration (decimal),Billable Rate (USD),Billable Amount (USD)
Website,Design review,Mockups,Ana Lima,,Ana.Lima@Example.com,"ux, review",Yes,29/04/2025,10:23 AM,29/04/2025,11:53:30 AM,01:30:30,1.51,50.00,75.42
Website,Stand-up,,Ana Lima,,ana.lima@example.com,,No,30/04/2025,09:00:00 AM,30/04/2025,09:15 AM,00:15:00,0.25,50.00,0.00
"""


def test_clockify_17_columns_activity_no_client_day_first_mixed_12h() -> None:
    path = write_tmp(CLOCKIFY_17)
    imported = read_import(path, "auto", ImportOptions.of(timezone="UTC"))
    assert imported.format == "clockify"
    first, second = imported.entries
    assert (first.work_date, first.duration_seconds, first.person.id) == (
        date(2025, 4, 29),
        5430,
        "ana.lima@example.com",
    )
    assert first.task == TaskRef("Mockups", "Mockups") and first.tags == ("ux", "review")
    assert first.containers == (Container("project", "website", "Website"),)
    assert first.started_at == datetime(2025, 4, 29, 10, 23, tzinfo=UTC)
    assert first.ended_at == datetime(2025, 4, 29, 11, 53, 30, tzinfo=UTC)
    assert (second.work_date, second.duration_seconds, second.task, second.billable) == (
        date(2025, 4, 30),
        900,
        None,
        False,
    )


_TMP: list[Path] = []


def write_tmp(text: str, name: str = "export.csv") -> Path:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="hb-import-"))
    _TMP.append(folder)
    return write(folder, text, name)


CLOCKIFY_NO_DURATION = """Project,Client,Description,Task,User,Email,Billable,Start Date,Start Time,End Date,End Time
Site,Acme,Night deploy,Ops,Bo Ek,bo@example.com,Yes,03/29/2025,11:30 PM,03/30/2025,04:00 AM
Site,Acme,Still running,Ops,Bo Ek,bo@example.com,Yes,03/31/2025,09:00 AM,,
"""


def test_clockify_without_durations_takes_end_minus_start_across_a_dst_change() -> None:
    imported = read_import(write_tmp(CLOCKIFY_NO_DURATION), "clockify", ImportOptions.of(timezone="Europe/Berlin"))
    [entry] = imported.entries  # the running timer is left out
    # 23:30 CET to 04:00 CEST: the clocks jumped at 02:00, so 3.5 hours passed, not 4.5.
    assert (entry.work_date, entry.duration_seconds) == (date(2025, 3, 29), 3 * 3600 + 1800)
    assert imported.skipped == {"running timers": 1}
    assert entry.container("client") == Container("client", "acme", "Acme")


CLOCKIFY_DECIMAL = """Project,Client,Description,Task,User,Email,Type,Billable,Start Date,Start Time,End Date,End Time,Duration (h),Duration (decimal)
P,C,Work,T,Bo Ek,bo@example.com,Regular,Yes,04/21/2025,09:00,04/21/2025,10:30,1.50,1.50
P,C,Lunch,T,Bo Ek,bo@example.com,Break,No,04/21/2025,12:00,04/21/2025,12:30,0.50,0.50
"""


def test_clockify_decimal_durations_and_breaks_left_out() -> None:
    imported = read_import(write_tmp(CLOCKIFY_DECIMAL), "auto", ImportOptions.of(timezone="UTC"))
    [entry] = imported.entries
    assert entry.duration_seconds == 5400 and entry.work_date == date(2025, 4, 21)
    assert imported.skipped == {"breaks": 1}


CLOCKIFY_AMBIGUOUS = """Project,Client,Description,Task,User,Email,Billable,Start Date,Start Time,End Date,End Time,Duration (h)
P,C,Work,T,Bo Ek,bo@example.com,Yes,04/05/2025,09:00 AM,04/05/2025,10:00 AM,01:00:00
"""


def test_dates_that_read_both_ways_ask_for_the_order_and_the_option_decides() -> None:
    path = write_tmp(CLOCKIFY_AMBIGUOUS)
    problems = rejected(path, ImportOptions.of(timezone="UTC"))
    assert len(problems) == 1 and "--date-order" in problems[0]
    us = read_import(path, "auto", ImportOptions.of(timezone="UTC", date_order="mdy"))
    eu = read_import(path, "auto", ImportOptions.of(timezone="UTC", date_order="dmy"))
    assert us.entries[0].work_date == date(2025, 4, 5) and eu.entries[0].work_date == date(2025, 5, 4)


def test_dates_in_both_orders_in_one_file_are_refused() -> None:
    text = CLOCKIFY_AMBIGUOUS + "P,C,More,T,Bo Ek,bo@example.com,Yes,13/05/2025,09:00 AM,13/05/2025,10:00 AM,01:00:00\n"
    text += "P,C,Most,T,Bo Ek,bo@example.com,Yes,05/14/2025,09:00 AM,05/14/2025,10:00 AM,01:00:00\n"
    problems = rejected(write_tmp(text), ImportOptions.of(timezone="UTC"))
    assert any("mix day-first" in p for p in problems)


def test_every_bad_cell_is_named_by_line_and_column() -> None:
    text = CLOCKIFY_17.splitlines()[0] + "\n"
    text += "Website,ok,,Ana Lima,,ana@example.com,,Yes,29/04/2025,10:23 AM,29/04/2025,11:23 AM,01:00:00,1.00,0,0\n"
    text += "Website,bad time,,Ana Lima,,ana@example.com,,Yes,30/04/2025,25:00,30/04/2025,11:23 AM,01:00:00,1.00,0,0\n"
    text += "Website,bad duration,,Ana Lima,,ana@example.com,,Maybe,31/04/2025,10:00,30/04/2025,11:23 AM,1h,1.00,0,0\n"
    problems = rejected(write_tmp(text), ImportOptions.of(timezone="UTC"))
    assert "line 3, column 'Start Time' (J): '25:00' is not a time of day" in problems[0]
    assert any(p.startswith("line 4, column 'Start Date' (I): '31/04/2025' is not a real date") for p in problems)
    assert any(p.startswith("line 4, column 'Duration (h)' (M)") for p in problems)
    assert any(p.startswith("line 4, column 'Billable' (H)") for p in problems)


# --------------------------------------------------------------------------- Toggl variants

TOGGL_NO_AMOUNT = """User,Email,Client,Project,Task,Description,Billable,Start date,Start time,End date,End time,Duration,Tags
Zoë Ñ,zoe@example.com,Acme,Shop,,"She said ""ship it"" 🚀 C:\\temp\\new",Yes,2025-01-31,23:30:00,2025-02-01,00:30:00,01:00:00,"a, b, c"
Zoë Ñ,zoe@example.com,Acme,Shop,,running,Yes,2025-02-01,09:00:00,,,-00:00:05,
"""


def test_toggl_without_amount_with_doubled_quotes_emoji_backslashes_and_a_running_timer() -> None:
    imported = read_import(write_tmp(TOGGL_NO_AMOUNT), "auto", ImportOptions.of(timezone="UTC"))
    assert imported.format == "toggl"
    [entry] = imported.entries
    assert entry.description == 'She said "ship it" 🚀 C:\\temp\\new'
    assert entry.tags == ("a", "b", "c") and entry.duration_seconds == 3600
    assert entry.work_date == date(2025, 1, 31) and entry.person.name == "Zoë Ñ"
    assert imported.skipped == {"running timers": 1}


# --------------------------------------------------------------------------- Harvest variants

HARVEST = """Date,Client,Project,Project Code,Task,Notes,Hours,Billable?,First Name,Last Name,Billable Rate,Billable Amount
2025-02-03,Acme,Shop,ACM-01,Dev,Checkout,"1,234.50",Yes,Bo,Ek,10.00,"12,345.00"
2025-02-04,Acme,Shop,ACM-01,Dev,Cart,0.25,No,Bo,Ek,10.00,2.50
"""


def test_harvest_dot_decimals_with_comma_thousands_and_the_project_code() -> None:
    imported = read_import(write_tmp(HARVEST), "auto", ImportOptions.of(contractor="bo@example.com"))
    first, second = imported.entries
    assert first.duration_seconds == 1234 * 3600 + 1800 and second.duration_seconds == 900
    assert first.custom_fields == (("project_code", "ACM-01"),)
    assert first.person.id == "bo@example.com" and first.person.name == "Bo Ek"


def test_harvest_numbers_that_read_both_ways_ask_for_the_decimal_mark() -> None:
    text = 'Date,Project,Notes,Hours,First Name,Last Name\n2025-02-03,Shop,x,"1,000",Bo,Ek\n2025-02-04,Shop,y,2,Bo,Ek\n'
    path = write_tmp(text)
    problems = rejected(path, ImportOptions())
    assert len(problems) == 1 and "--decimal" in problems[0]
    assert read_import(path, "auto", ImportOptions.of(decimal_mark="comma")).entries[0].duration_seconds == 3600
    assert read_import(path, "auto", ImportOptions.of(decimal_mark="dot")).entries[0].duration_seconds == 3_600_000


def test_contractor_option_that_disagrees_with_the_files_emails_is_a_problem() -> None:
    problems = rejected(write_tmp(TOGGL_NO_AMOUNT), ImportOptions.of(timezone="UTC", contractor="other@example.com"))
    assert problems and "not --contractor other@example.com" in problems[0]


# --------------------------------------------------------------------------- the timesheet format

TEMPLATE = Path(__file__).resolve().parents[2] / "mappings" / "schema" / "timesheet-v1.csv"
SCHEMA = Path(__file__).resolve().parents[2] / "mappings" / "schema" / "timesheet-v1.schema.json"


def test_the_published_template_imports_and_validates_against_the_schema() -> None:
    import json

    import jsonschema

    imported = read_import(TEMPLATE, "auto", ImportOptions.of(timezone="Europe/London"))
    assert imported.format == "timesheet"
    first, second = imported.entries
    assert (first.duration_seconds, first.custom_field_map["project_code"]) == (27_000, "ACME-BILL")
    assert first.external_id != second.external_id
    assert (second.duration_seconds, second.container("project").name) == (6300, "Website relaunch")  # type: ignore[union-attr]
    assert second.started_at == datetime(2026, 11, 3, 9, tzinfo=UTC) and second.tags == ("review", "ui")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for row in file_rows(TEMPLATE):
        assert list(validator.iter_errors(row)) == []
    assert list(validator.iter_errors({"date": "2026-11-03", "contractor_email": "a@b.c", "description": "x"}))


TIMESHEET_BAD = """date,contractor_email,hours,duration,description,project_code,hourz
2026-11-03,ada@example.com,7.5,,Work,ACME,
03/11/2026,ada@example.com,"7,5",,,ACME,
2026-11-05,ada@example.com,,,Work,,
"""


def test_a_timesheet_lists_every_problem_with_its_line_and_column() -> None:
    problems = rejected(write_tmp(TIMESHEET_BAD))
    assert problems[0].startswith("line 1, column 'hourz' (G): not a column of the timesheet format v1")
    fixed = TIMESHEET_BAD.replace(",hourz", "").replace(",\n", "\n")
    problems = rejected(write_tmp(fixed))
    assert any(p.startswith("line 3, column 'date' (A): '03/11/2026': write the date as YYYY-MM-DD") for p in problems)
    assert any(p.startswith("line 3, column 'hours' (C): '7,5': write hours with a decimal point") for p in problems)
    assert any(p.startswith("line 3, column 'description' (E): empty") for p in problems)
    assert any(p.startswith("line 4, column 'hours' (C): empty: the time worked") for p in problems)
    assert any(p.startswith("line 4, column 'project_code' (F): empty") for p in problems)
    assert not any(p.startswith("line 2") for p in problems)


def test_timesheet_references_identify_rows_and_must_be_unique() -> None:
    text = "date,contractor_email,hours,description,project_code,reference\n"
    text += "2026-11-03,ada@example.com,1,Work,ACME,R1\n2026-11-04,ada@example.com,2,Work,ACME,R1\n"
    problems = rejected(write_tmp(text))
    assert problems == ["line 3, column 'reference' (F): reference 'R1' is already used on line 2"]


# --------------------------------------------------------------------------- files: XLSX, encodings, detection


def test_xlsx_first_sheet_with_typed_cells() -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["date", "contractor_email", "duration", "description", "client", "project", "billable"])
    sheet.append([datetime(2026, 11, 3), "Ada@Example.com", "1:30", "Work 🚀", "Acme", "Shop", True])
    sheet.append([datetime(2026, 11, 4), "ada@example.com", "0:45", "More", "Acme", "Shop", False])
    book.create_sheet("ignored").append(["not", "read"])
    folder = write_tmp("").parent
    path = folder / "week.xlsx"
    book.save(path)
    imported = read_import(path, "auto", ImportOptions())
    assert [(e.work_date, e.duration_seconds, e.billable) for e in imported.entries] == [
        (date(2026, 11, 3), 5400, True),
        (date(2026, 11, 4), 2700, False),
    ]
    assert imported.entries[0].person.id == "ada@example.com"


def test_an_encoding_that_is_not_utf8_is_asked_for_then_read() -> None:
    text = "date,contractor_email,hours,description,project_code\n2026-11-03,ada@example.com,1,Caf\u00e9 work,ACME\n"
    folder = write_tmp("").parent
    path = write(folder, text, "cp1252.csv", encoding="cp1252")
    problems = rejected(path, ImportOptions())
    assert "--encoding" in problems[0] and "line 2" in problems[0]
    imported = read_import(path, "auto", ImportOptions.of(encoding="cp1252"))
    assert imported.entries[0].description == "Café work"


def test_semicolon_files_and_utf8_bom_are_read() -> None:
    text = "date;contractor_email;hours;description;project_code\n2026-11-03;ada@example.com;2.5;Work;ACME\n"
    folder = write_tmp("").parent
    imported = read_import(write(folder, text, "semi.csv", bom=True), "auto", ImportOptions())
    assert imported.entries[0].duration_seconds == 9000


def test_an_unknown_file_says_what_it_accepts_and_a_bad_option_is_a_config_error() -> None:
    problems = rejected(write_tmp("a,b,c\n1,2,3\n"))
    assert "pass --format" in problems[0]
    with pytest.raises(ConfigError, match="unknown time zone"):
        ImportOptions.of(timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="date order"):
        ImportOptions.of(date_order="ymd")


def test_a_row_with_a_missing_cell_is_named() -> None:
    text = "date,contractor_email,hours,description,project_code\n2026-11-03,ada@example.com,1,Work\n"
    problems = rejected(write_tmp(text))
    assert problems == ["line 2: has 4 cells but the header has 5: a missing or extra separator or quote"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("11:00:00 AM", (11, 0, 0)), ("12:05 AM", (0, 5, 0)), ("12:05 pm", (12, 5, 0)), ("23:59:59", (23, 59, 59))],
)
def test_clock_times(text: str, expected: tuple[int, int, int]) -> None:
    value = parse_clock(text)
    assert (value.hour, value.minute, value.second) == expected


@pytest.mark.parametrize(
    ("text", "mark", "seconds"),
    [
        ("25:00:00", None, 90_000),
        ("0:01", None, 60),
        ("0,01", ",", 36),
        ("2.000,5", ",", 7_201_800),
        ("0.333", ".", 1199),
    ],
)
def test_durations_are_exact_seconds(text: str, mark: str | None, seconds: int) -> None:
    assert parse_duration(text, mark) == seconds  # type: ignore[arg-type]


def test_clockify_xlsx_with_date_time_and_number_cells() -> None:
    from datetime import time

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    header = ["Project", "Client", "Description", "Task", "User", "Email", "Billable", "Start Date", "Start Time"]
    sheet.append([*header, "End Date", "End Time", "Duration (h)", "Duration (decimal)"])
    cells = ["Shop", "Acme", "Work", "Dev", "Bo Ek", "bo@example.com", "Yes", datetime(2025, 4, 29), time(10, 23)]
    sheet.append([*cells, datetime(2025, 4, 29), time(10, 53, 30), time(0, 30, 30), 0.51])
    path = write_tmp("").parent / "clockify.xlsx"
    book.save(path)
    [entry] = read_import(path, "auto", ImportOptions.of(timezone="UTC")).entries
    assert (entry.work_date, entry.duration_seconds) == (date(2025, 4, 29), 1830)
    assert entry.started_at == datetime(2025, 4, 29, 10, 23, tzinfo=UTC)


def test_the_sandbox_exports_are_deterministic_and_read_back_to_their_minutes(tmp_path: Path) -> None:
    from connectors.sandbox.dataset import generate_dataset
    from connectors.sandbox.exports import ZONE, write_exports

    dataset = generate_dataset(7, anchor=date(2026, 11, 20), days=40)
    first = write_exports(dataset, tmp_path / "a")
    second = write_exports(dataset, tmp_path / "b")
    assert [e.path.read_bytes() for e in first] == [e.path.read_bytes() for e in second]
    assert [e.kind for e in first] == ["clockify", "toggl", "harvest", "timesheet"]
    for export in first:
        contractor = export.contractor if export.kind == "harvest" else None
        imported = read_import(export.path, "auto", ImportOptions.of(timezone=ZONE.key, contractor=contractor))
        assert imported.format == export.kind
        assert imported.seconds == export.minutes * 60 and len(imported.entries) == export.rows
        assert {e.person.id for e in imported.entries} == {export.contractor}
