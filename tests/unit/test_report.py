"""Tests for the period report: model (sync.reporting.model), CSV/XLSX/JSON rendering, determinism, atomic writes."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import time
import zipfile
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl.utils import get_column_letter

from sync.reporting import render as render_module
from sync.reporting.model import Period, Report, ReportLine, build_report, format_hours, format_minutes
from sync.reporting.output import write_report
from sync.reporting.tables import SUMMARY_HEADERS

OCTOBER = Period.month("2026-10")
ZOE = "Zoë Müller"
ALL_FILES = (
    "hours-2026-10.csv",
    "entries-2026-10.csv",
    "unmapped-2026-10.csv",
    "hours-2026-10.xlsx",
    "hours-2026-10.json",
)


def make_line(external_id: str, **overrides: Any) -> ReportLine:
    values: dict[str, Any] = {
        "source": "asana",
        "account": "ws-1",
        "external_id": external_id,
        "work_date": date(2026, 10, 5),
        "seconds": 3600,
        "person_id": "u-1",
        "person_name": "Ada Lovelace",
        "contractor": "Ada Lovelace",
        "code": "ACME-WEB",
        "code_name": "Acme website",
        "client": "Acme",
        "cost_center": "CC-200",
        "billable": True,
        "rule_id": "r-web",
        "unmapped_reason": None,
        "unmapped_detail": None,
        "task": "Build header",
        "container": "Acme / Website",
        "description": "",
        "version": 1,
    }
    values.update(overrides)
    return ReportLine(**values)


def unmapped(external_id: str, reason: str, detail: str, **overrides: Any) -> ReportLine:
    values: dict[str, Any] = {
        "code": None,
        "code_name": None,
        "client": None,
        "cost_center": None,
        "rule_id": None,
        "billable": False,
        "unmapped_reason": reason,
        "unmapped_detail": detail,
    }
    return make_line(external_id, **{**values, **overrides})


@pytest.fixture
def lines() -> list[ReportLine]:
    return [
        make_line("a1", seconds=5400, work_date=date(2026, 10, 3)),
        make_line("a2", seconds=1800, work_date=date(2026, 10, 3), billable=False),
        make_line("a3", seconds=900, contractor=ZOE, person_name=ZOE, person_id="u-2"),
        make_line(
            "c1",
            source="clickup",
            account="team-9",
            seconds=7200,
            code="ACME-APP",
            code_name="Acme app",
            work_date=date(2026, 10, 1),
        ),
        make_line(
            "m1",
            source="monday",
            account="acc-3",
            seconds=2700,
            code="NW-SEO",
            code_name="Northwind SEO",
            client="Northwind",
            cost_center="CC-100",
            contractor="bob Builder",
            work_date=date(2026, 10, 31),
        ),
        make_line(
            "m2",
            source="monday",
            account="acc-3",
            seconds=60,
            code="NW-SEO",
            code_name="Northwind SEO",
            client="Northwind",
            cost_center="CC-100",
            contractor="Alice Archer",
            work_date=date(2026, 10, 30),
            billable=False,
        ),
        unmapped("u1", "no_rule_matched", "No rule matched project 'Internal'", seconds=1234),
        unmapped("u2", "no_rule_matched", "No rule matched project 'Internal'", seconds=66, billable=True),
        unmapped("u3", "inactive_code", "Code OLD-1 is inactive", seconds=3000, work_date=date(2026, 10, 2)),
    ]


@pytest.fixture
def report(lines: list[ReportLine]) -> Report:
    return build_report(OCTOBER, lines)


def read_csv(path: Path) -> list[dict[str, str]]:
    # utf-8-sig: the files start with the BOM Excel needs (HOURBRIDGE_CSV_BOM, on by default).
    with path.open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def no_float(text: str) -> Any:
    raise AssertionError(f"float in JSON: {text}")


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0.00"),
        (5400, "1.50"),
        (3600, "1.00"),
        (17, "0.00"),  # 0.00472
        (18, "0.01"),  # 0.005 exactly, half up
        (54, "0.02"),  # 0.015 exactly, half up
        (90, "0.03"),  # 0.025 exactly: half up, where half-even would give 0.02
        (126, "0.04"),  # 0.035
        (30, "0.01"),  # 0.00833
        (35_999, "10.00"),
        (3600 * 10**30 + 18, "1" + "0" * 30 + ".01"),  # beyond Decimal's default 28 digits
        (-90, "-0.03"),
        (-17, "0.00"),
    ],
)
def test_format_hours_rounds_half_up_exactly(seconds: int, expected: str) -> None:
    assert format_hours(seconds) == expected


@pytest.mark.parametrize(("seconds", "expected"), [(0, "0.00"), (90, "1.50"), (1, "0.02"), (61, "1.02")])
def test_format_minutes(seconds: int, expected: str) -> None:
    assert format_minutes(seconds) == expected


# --------------------------------------------------------------------------- period


def test_period_month_parses_and_labels() -> None:
    assert Period(date(2026, 10, 1), date(2026, 10, 31), "2026-10") == OCTOBER
    february = Period.month("2024-02")
    assert (february.start, february.end, february.label) == (date(2024, 2, 1), date(2024, 2, 29), "2024-02")
    assert Period.month("2025-02").end == date(2025, 2, 28)
    assert Period.month("2026-12").end == date(2026, 12, 31)
    assert date(2026, 10, 31) in OCTOBER
    assert date(2026, 11, 1) not in OCTOBER


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-1", "2026/10", "", "October 2026", "2026-10-01"])
def test_period_month_rejects_other_forms(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM") as caught:
        Period.month(text)
    assert repr(text) in str(caught.value)


def test_period_between() -> None:
    half = Period.between(date(2026, 10, 1), date(2026, 10, 15))
    assert half.label == "2026-10-01_2026-10-15"
    assert Period.between(date(2026, 10, 1), date(2026, 10, 31)) == OCTOBER
    assert Period.between(date(2026, 10, 1), date(2026, 10, 1)).label == "2026-10-01_2026-10-01"
    assert Period.between(date(2026, 9, 1), date(2026, 10, 31)).label == "2026-09-01_2026-10-31"
    with pytest.raises(ValueError, match="before its start"):
        Period.between(date(2026, 10, 2), date(2026, 10, 1))


def test_period_rejects_a_label_that_does_not_match_its_dates() -> None:
    with pytest.raises(ValueError, match="does not match"):
        Period(date(2026, 10, 1), date(2026, 10, 31), "../../etc/passwd")


# --------------------------------------------------------------------------- model


def test_totals_reconcile_exactly(report: Report, lines: list[ReportLine]) -> None:
    totals = report.totals
    assert totals.entries == len(lines) == 9
    assert totals.seconds == sum(line.seconds for line in lines) == 22360
    # Unmapped time is neither billable nor non-billable (u2 is marked billable in its tool).
    assert totals.billable_seconds == 5400 + 900 + 7200 + 2700
    assert totals.nonbillable_seconds == 1800 + 60
    assert totals.mapped_seconds == 5400 + 1800 + 900 + 7200 + 2700 + 60
    assert totals.unmapped_seconds == 1234 + 66 + 3000
    assert totals.unmapped_entries == 3
    assert totals.mapped_entries == 6
    assert totals.seconds == totals.mapped_seconds + totals.unmapped_seconds
    assert totals.mapped_seconds == totals.billable_seconds + totals.nonbillable_seconds
    assert report.total.unmapped_seconds == totals.unmapped_seconds
    assert totals.seconds == totals.billable_seconds + totals.nonbillable_seconds + totals.unmapped_seconds
    assert totals.reconciles
    assert sum(line.seconds for line in report.lines) == totals.seconds
    assert sum(cc.tally.seconds for cc in report.cost_centers) == report.mapped.seconds == totals.mapped_seconds
    assert report.total.seconds == totals.seconds


def test_summary_nesting_and_sorting(report: Report) -> None:
    assert [cc.cost_center for cc in report.cost_centers] == ["CC-100", "CC-200"]
    cc100, cc200 = report.cost_centers
    assert cc100.client == "Northwind"
    assert [code.code for code in cc100.codes] == ["NW-SEO"]
    seo = cc100.codes[0]
    # case-insensitive ordering: "Alice Archer" < "bob Builder"
    assert [c.contractor for c in seo.contractors] == ["Alice Archer", "bob Builder"]
    assert [c.tally.seconds for c in seo.contractors] == [60, 2700]
    assert seo.tally.seconds == cc100.tally.seconds == 2760
    assert seo.tally.billable_seconds == 2700
    assert seo.tally.nonbillable_seconds == 60

    assert [code.code for code in cc200.codes] == ["ACME-APP", "ACME-WEB"]
    app, web = cc200.codes
    assert (app.code_name, app.client, app.tally.seconds, app.tally.entries) == ("Acme app", "Acme", 7200, 1)
    assert [c.contractor for c in web.contractors] == ["Ada Lovelace", ZOE]
    ada, zoe = web.contractors
    assert (ada.tally.entries, ada.tally.seconds, ada.tally.billable_seconds) == (2, 7200, 5400)
    assert ada.tally.hours == Decimal("2.00")
    assert ada.tally.billable_hours == Decimal("1.50")
    assert ada.tally.nonbillable_hours == Decimal("0.50")
    assert (zoe.tally.entries, zoe.tally.seconds) == (1, 900)
    assert cc200.tally.seconds == 5400 + 1800 + 900 + 7200
    assert cc200.tally.minutes == Decimal("255.00")


def test_unmapped_section_grouped_by_reason_and_detail(report: Report) -> None:
    groups = [(g.reason, g.detail, g.tally.entries, g.tally.seconds) for g in report.unmapped]
    assert groups == [
        ("inactive_code", "Code OLD-1 is inactive", 1, 3000),
        ("no_rule_matched", "No rule matched project 'Internal'", 2, 1300),
    ]
    assert [line.external_id for line in report.unmapped[1].lines] == ["u1", "u2"]
    assert report.unmapped[1].tally.billable_seconds == 0
    assert report.unmapped[1].tally.nonbillable_seconds == 0
    assert report.unmapped[1].tally.unmapped_seconds == 1300
    assert {line.external_id for line in report.lines if line.mapped} == {"a1", "a2", "a3", "c1", "m1", "m2"}
    assert report.unmapped_total.seconds == 4300


def test_unmapped_without_reason_is_still_reported() -> None:
    built = build_report(OCTOBER, [unmapped("x", "", "", unmapped_reason=None, unmapped_detail=None)])
    assert [(g.reason, g.detail) for g in built.unmapped] == [("unspecified", "")]
    assert built.totals.unmapped_seconds == built.totals.seconds == 3600


def test_detail_sorted_by_date_source_account_id(report: Report, lines: list[ReportLine]) -> None:
    keys = [(line.work_date, line.source, line.account, line.external_id) for line in report.lines]
    assert keys == sorted(keys)
    assert [line.external_id for line in report.lines[:3]] == ["c1", "u3", "a1"]
    shuffled = list(lines)
    random.Random(7).shuffle(shuffled)
    assert build_report(OCTOBER, shuffled) == report


def test_rejects_lines_that_would_break_reconciliation() -> None:
    with pytest.raises(ValueError, match="outside period 2026-10"):
        build_report(OCTOBER, [make_line("x", work_date=date(2026, 11, 1))])
    with pytest.raises(ValueError, match="more than once"):
        build_report(OCTOBER, [make_line("x"), make_line("x", seconds=1)])
    with pytest.raises(ValueError, match="negative"):
        build_report(OCTOBER, [make_line("x", seconds=-5)])


def test_empty_period_gives_zero_totals(tmp_path: Path) -> None:
    built = build_report(OCTOBER, [])
    assert built.totals.seconds == built.totals.entries == 0
    written = write_report(built, tmp_path)
    assert [p.name for p in written.files] == list(ALL_FILES)
    rows = read_csv(tmp_path / "hours-2026-10.csv")
    assert [(r["level"], r["seconds"], r["hours"]) for r in rows] == [
        ("mapped_total", "0", "0.00"),
        ("unmapped_total", "0", "0.00"),
        ("total", "0", "0.00"),
    ]


# --------------------------------------------------------------------------- files


def test_write_report_names_files_and_returns_totals(report: Report, tmp_path: Path) -> None:
    written = write_report(report, tmp_path / "out")
    assert written.period == OCTOBER
    assert written.totals == report.totals
    assert [p.name for p in written.files] == list(ALL_FILES)
    assert all(p.parent == tmp_path / "out" and p.is_file() for p in written.files)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(ALL_FILES)


def test_formats_subset_and_validation(report: Report, tmp_path: Path) -> None:
    written = write_report(report, tmp_path, formats=["JSON", "json"])
    assert [p.name for p in written.files] == ["hours-2026-10.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["hours-2026-10.json"]
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        write_report(report, tmp_path / "x", formats=["csv", "pdf"])
    with pytest.raises(ValueError, match="no report format"):
        write_report(report, tmp_path / "x", formats=[])
    assert not (tmp_path / "x").exists()


def test_csv_summary_rows(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path, formats=["csv"])
    rows = read_csv(tmp_path / "hours-2026-10.csv")
    assert list(rows[0]) == list(SUMMARY_HEADERS)
    assert list(rows[0])[:13] == [
        "period",
        "level",
        "cost_center",
        "client",
        "code",
        "code_name",
        "contractor",
        "entries",
        "seconds",
        "minutes",
        "hours",
        "billable_hours",
        "nonbillable_hours",
    ]
    brief = [(r["level"], r["cost_center"], r["code"], r["contractor"], r["unmapped_reason"]) for r in rows]
    assert brief == [
        ("contractor", "CC-100", "NW-SEO", "Alice Archer", ""),
        ("contractor", "CC-100", "NW-SEO", "bob Builder", ""),
        ("code", "CC-100", "NW-SEO", "", ""),
        ("cost_center", "CC-100", "", "", ""),
        ("contractor", "CC-200", "ACME-APP", "Ada Lovelace", ""),
        ("code", "CC-200", "ACME-APP", "", ""),
        ("contractor", "CC-200", "ACME-WEB", "Ada Lovelace", ""),
        ("contractor", "CC-200", "ACME-WEB", ZOE, ""),
        ("code", "CC-200", "ACME-WEB", "", ""),
        ("cost_center", "CC-200", "", "", ""),
        ("mapped_total", "", "", "", ""),
        ("unmapped", "", "", "", "inactive_code"),
        ("unmapped", "", "", "", "no_rule_matched"),
        ("unmapped_total", "", "", "", ""),
        ("total", "", "", "", ""),
    ]
    by_level = {r["level"]: r for r in rows}
    total = by_level["total"]
    assert (total["entries"], total["seconds"], total["minutes"], total["hours"]) == (
        "9",
        "22360",
        "372.67",
        "6.21",
    )
    assert int(total["seconds"]) == int(by_level["mapped_total"]["seconds"]) + int(
        by_level["unmapped_total"]["seconds"]
    )
    assert int(total["seconds"]) == (
        int(total["billable_seconds"]) + int(total["nonbillable_seconds"]) + int(total["unmapped_seconds"])
    )
    assert {r["period"] for r in rows} == {"2026-10"}
    ada_web = rows[6]
    assert (ada_web["seconds"], ada_web["hours"], ada_web["billable_hours"], ada_web["nonbillable_hours"]) == (
        "7200",
        "2.00",
        "1.50",
        "0.50",
    )
    assert ada_web["client"] == "Acme"
    assert ada_web["code_name"] == "Acme website"
    leaves = sum(int(r["seconds"]) for r in rows if r["level"] in {"contractor", "unmapped"})
    assert leaves == int(total["seconds"])


def test_csv_detail_and_unmapped_files(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path, formats=["csv"])
    entries = read_csv(tmp_path / "entries-2026-10.csv")
    assert [r["external_id"] for r in entries] == [line.external_id for line in report.lines]
    assert sum(int(r["seconds"]) for r in entries) == report.totals.seconds
    first = entries[0]
    assert (first["work_date"], first["source"], first["account"], first["hours"], first["billable"]) == (
        "2026-10-01",
        "clickup",
        "team-9",
        "2.00",
        "true",
    )
    assert entries[1]["code"] == ""
    assert entries[1]["unmapped_reason"] == "inactive_code"

    missing = read_csv(tmp_path / "unmapped-2026-10.csv")
    assert [(r["unmapped_reason"], r["external_id"], r["seconds"]) for r in missing] == [
        ("inactive_code", "u3", "3000"),
        ("no_rule_matched", "u1", "1234"),
        ("no_rule_matched", "u2", "66"),
    ]
    assert missing[1]["unmapped_detail"] == "No rule matched project 'Internal'"
    assert missing[1]["minutes"] == "20.57"


def test_csv_encoding_and_line_endings(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path, formats=["csv"])
    for name in ("hours-2026-10.csv", "entries-2026-10.csv", "unmapped-2026-10.csv"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\xef\xbb\xbf")  # the BOM, once, so Excel reads UTF-8
        assert not data[3:].startswith(b"\xef\xbb\xbf")
        assert data.endswith(b"\r\n")
        assert data.count(b"\r\n") == data.count(b"\n")
        data.decode("utf-8")


def test_csv_without_bom_when_turned_off(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path / "bom", formats=["csv"])
    write_report(report, tmp_path / "plain", formats=["csv"], csv_bom=False)
    for name in ("hours-2026-10.csv", "entries-2026-10.csv", "unmapped-2026-10.csv"):
        plain = (tmp_path / "plain" / name).read_bytes()
        assert not plain.startswith(b"\xef\xbb\xbf")
        assert (tmp_path / "bom" / name).read_bytes() == b"\xef\xbb\xbf" + plain


@pytest.mark.parametrize("trigger", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_formula_injection_guard(trigger: str, tmp_path: Path) -> None:
    hostile = f'{trigger}HYPERLINK("http://evil.example","x")'
    line = make_line(
        "x",
        task=hostile,
        container=hostile,
        description=hostile,
        person_name=hostile,
        contractor=hostile,
        code_name=hostile,
    )
    built = build_report(OCTOBER, [line, unmapped("y", "no_rule_matched", hostile, task=hostile)])
    write_report(built, tmp_path, formats=["csv"])
    entries = read_csv(tmp_path / "entries-2026-10.csv")
    for field in ("task", "container", "description", "person_name", "contractor", "code_name"):
        assert entries[0][field] == "'" + hostile
    assert entries[0]["seconds"] == "3600"  # numbers are never prefixed
    summary = read_csv(tmp_path / "hours-2026-10.csv")
    assert summary[0]["contractor"] == "'" + hostile
    assert summary[0]["code_name"] == "'" + hostile
    missing = read_csv(tmp_path / "unmapped-2026-10.csv")
    assert missing[0]["unmapped_detail"] == "'" + hostile
    assert missing[0]["task"] == "'" + hostile
    # Harmless text is left alone, including these characters further in.
    assert make_line("z", task="Fix a-b=c").task == "Fix a-b=c"
    write_report(build_report(OCTOBER, [make_line("z", task="Fix a-b=c")]), tmp_path, formats=["csv"])
    assert read_csv(tmp_path / "entries-2026-10.csv")[0]["task"] == "Fix a-b=c"


def test_xlsx_reads_back_with_the_right_numbers(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path, formats=["xlsx"])
    book = openpyxl.load_workbook(tmp_path / "hours-2026-10.xlsx")
    assert book.sheetnames == ["Summary", "Entries", "Unmapped"]

    summary = book["Summary"]
    headers = [cell.value for cell in summary[1]]
    assert headers == list(SUMMARY_HEADERS)
    assert all(cell.font.bold for cell in summary[1])
    assert summary.freeze_panes == "A2"
    col = {name: index for index, name in enumerate(headers)}
    rows = list(summary.iter_rows(min_row=2))
    total = rows[-1]
    assert total[col["level"]].value == "total"
    assert total[col["level"]].font.bold
    assert total[col["seconds"]].value == 22360
    assert Decimal(str(total[col["hours"]].value)) == Decimal("6.21")
    assert total[col["hours"]].number_format == "0.00"
    assert Decimal(str(total[col["minutes"]].value)) == Decimal("372.67")
    ada_web = rows[6]
    assert [ada_web[col[k]].value for k in ("code", "contractor", "seconds")] == ["ACME-WEB", "Ada Lovelace", 7200]
    assert Decimal(str(ada_web[col["hours"]].value)) == Decimal("2.00")
    assert Decimal(str(ada_web[col["billable_hours"]].value)) == Decimal("1.50")
    assert Decimal(str(ada_web[col["nonbillable_hours"]].value)) == Decimal("0.50")
    assert isinstance(ada_web[col["hours"]].value, int | float)
    assert not ada_web[col["level"]].font.bold
    letter = {name: get_column_letter(index + 1) for name, index in col.items()}
    assert summary.column_dimensions[letter["level"]].width >= len("unmapped_total")
    assert summary.column_dimensions[letter["unmapped_detail"]].width >= len("unmapped_detail")

    entries = book["Entries"]
    entry_headers = [cell.value for cell in entries[1]]
    assert entries.freeze_panes == "A2"
    assert all(cell.font.bold for cell in entries[1])
    first = dict(zip(entry_headers, next(entries.iter_rows(min_row=2)), strict=True))
    assert first["work_date"].value == datetime(2026, 10, 1)
    assert first["work_date"].is_date
    assert first["seconds"].value == 7200
    assert first["billable"].value is True
    assert Decimal(str(first["hours"].value)) == Decimal("2.00")
    assert first["hours"].number_format == "0.00"
    detail_seconds = [row[entry_headers.index("seconds")] for row in entries.iter_rows(min_row=2, values_only=True)]
    assert sum(detail_seconds) == report.totals.seconds

    missing = book["Unmapped"]
    values = list(missing.iter_rows(min_row=2, values_only=True))
    assert [(v[0], v[5], v[10]) for v in values] == [
        ("inactive_code", "u3", 3000),
        ("no_rule_matched", "u1", 1234),
        ("no_rule_matched", "u2", 66),
    ]


def test_xlsx_keeps_formula_like_text_as_text(tmp_path: Path) -> None:
    hostile = "=1+1"
    write_report(build_report(OCTOBER, [make_line("x", task=hostile, description="bell\x07")]), tmp_path, ["xlsx"])
    book = openpyxl.load_workbook(tmp_path / "hours-2026-10.xlsx")
    sheet = book["Entries"]
    headers = [cell.value for cell in sheet[1]]
    task = sheet.cell(row=2, column=headers.index("task") + 1)
    assert task.value == hostile
    assert task.data_type == "s"
    assert sheet.cell(row=2, column=headers.index("description") + 1).value == "bell\ufffd"


def test_json_parses_and_matches(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path, formats=["json"])
    text = (tmp_path / "hours-2026-10.json").read_text(encoding="utf-8")
    data = json.loads(text, parse_float=no_float)
    assert text == json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert sorted(data) == ["entries", "period", "summary", "totals", "unmapped"]
    assert data["period"] == {"start": "2026-10-01", "end": "2026-10-31", "label": "2026-10"}

    totals = data["totals"]
    assert totals["seconds"] == 22360
    assert totals["hours"] == "6.21"
    assert totals["minutes"] == "372.67"
    assert totals["mapped_seconds"] + totals["unmapped_seconds"] == totals["seconds"]
    assert totals["billable_seconds"] + totals["nonbillable_seconds"] == totals["mapped_seconds"]
    assert totals["unmapped_seconds"] == 4300
    assert totals["unmapped_entries"] == 3
    assert totals["checks"] == {
        "mapped_equals_billable_plus_nonbillable": True,
        "total_equals_mapped_plus_unmapped": True,
    }
    shown = [Decimal(totals[k]) for k in ("billable_hours", "nonbillable_hours", "unmapped_hours")]
    assert sum(shown) == Decimal(totals["hours"])
    assert Decimal(totals["mapped_hours"]) + Decimal(totals["unmapped_hours"]) == Decimal(totals["hours"])

    assert [cc["cost_center"] for cc in data["summary"]] == ["CC-100", "CC-200"]
    cc200 = data["summary"][1]
    assert [code["code"] for code in cc200["codes"]] == ["ACME-APP", "ACME-WEB"]
    web = cc200["codes"][1]
    assert web["code_name"] == "Acme website"
    assert [(c["contractor"], c["totals"]["seconds"], c["totals"]["hours"]) for c in web["contractors"]] == [
        ("Ada Lovelace", 7200, "2.00"),
        (ZOE, 900, "0.25"),
    ]
    assert web["totals"]["billable_hours"] == "1.75"
    leaves = sum(
        person["totals"]["seconds"] for cc in data["summary"] for code in cc["codes"] for person in code["contractors"]
    )
    assert leaves + sum(group["totals"]["seconds"] for group in data["unmapped"]) == totals["seconds"]

    assert [(g["reason"], [e["external_id"] for e in g["entries"]]) for g in data["unmapped"]] == [
        ("inactive_code", ["u3"]),
        ("no_rule_matched", ["u1", "u2"]),
    ]
    assert [e["external_id"] for e in data["entries"]] == [line.external_id for line in report.lines]
    first = data["entries"][0]
    assert first["work_date"] == "2026-10-01"
    assert first["seconds"] == 7200
    assert first["hours"] == "2.00"
    assert first["billable"] is True
    assert data["entries"][1]["code"] is None


def test_unicode_names_round_trip_in_every_format(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path)
    assert ZOE.encode("utf-8") in (tmp_path / "hours-2026-10.json").read_bytes()
    data = json.loads((tmp_path / "hours-2026-10.json").read_text(encoding="utf-8"))
    assert ZOE in [e["person_name"] for e in data["entries"]]
    assert ZOE in [r["contractor"] for r in read_csv(tmp_path / "hours-2026-10.csv")]
    assert ZOE in [r["person_name"] for r in read_csv(tmp_path / "entries-2026-10.csv")]
    book = openpyxl.load_workbook(tmp_path / "hours-2026-10.xlsx")
    contractor = list(SUMMARY_HEADERS).index("contractor")
    assert ZOE in [row[contractor] for row in book["Summary"].iter_rows(min_row=2, values_only=True)]
    assert ZOE in [row[5] for row in book["Entries"].iter_rows(min_row=2, values_only=True)]


def test_no_email_addresses_in_any_file(tmp_path: Path) -> None:
    built = build_report(
        OCTOBER,
        [
            make_line("x", person_name="zoe@example.com", description="asked jo.doe+x@mail.example.org"),
            unmapped("y", "no_rule_matched", "user zoe@example.com has no contractor"),
        ],
    )
    written = write_report(built, tmp_path)
    for path in written.files:
        raw = path.read_bytes()
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                raw = b"".join(archive.read(name) for name in archive.namelist())
        assert b"example.com" not in raw
        assert b"mail.example.org" not in raw
    assert built.lines[0].description == "asked [email]"
    assert built.unmapped[0].detail == "user [email] has no contractor"


def test_byte_identical_across_runs_and_clocks(
    report: Report, lines: list[ReportLine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_report(report, tmp_path / "first")
    later = time.time() + 400 * 86400 + 3723
    monkeypatch.setattr(time, "time", lambda: later)
    shuffled = list(reversed(lines))
    write_report(build_report(OCTOBER, shuffled), tmp_path / "second")
    first, second = file_bytes(tmp_path / "first"), file_bytes(tmp_path / "second")
    assert sorted(first) == sorted(ALL_FILES)
    assert first == second

    with zipfile.ZipFile(tmp_path / "second" / "hours-2026-10.xlsx") as archive:
        assert {info.date_time for info in archive.infolist()} == {(2026, 10, 31, 0, 0, 0)}
        core = archive.read("docProps/core.xml").decode()
    assert "2026-10-31T00:00:00Z" in core
    assert core.count("2026-10-31T00:00:00Z") == 2


def test_unchanged_files_are_not_rewritten(report: Report, tmp_path: Path) -> None:
    write_report(report, tmp_path)
    before = {p.name: p.stat().st_ino for p in tmp_path.iterdir()}
    (tmp_path / "hours-2026-10.json").write_bytes(b"stale\n")
    written = write_report(report, tmp_path)
    after = {p.name: p.stat().st_ino for p in tmp_path.iterdir()}
    assert sorted(after) == sorted(ALL_FILES)
    assert [p.name for p in written.files] == list(ALL_FILES)
    for name in ALL_FILES:
        assert (after[name] == before[name]) is (name != "hours-2026-10.json"), name
    assert json.loads((tmp_path / "hours-2026-10.json").read_bytes())["totals"]["seconds"] == 22360


def test_failed_render_leaves_existing_files_untouched(
    report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "hours-2026-10.csv").write_bytes(b"old summary\r\n")
    (tmp_path / "hours-2026-10.json").write_bytes(b"{}\n")
    before = file_bytes(tmp_path)

    def broken(_: Report) -> bytes:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(render_module, "_render_xlsx", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_report(report, tmp_path)
    assert file_bytes(tmp_path) == before


def test_failed_write_leaves_no_partial_files(report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "hours-2026-10.json").write_bytes(b"{}\n")
    before = file_bytes(tmp_path)
    calls = {"n": 0}
    real_fsync = os.fsync

    def flaky_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 4:  # while staging the fourth file (the workbook)
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", flaky_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_report(report, tmp_path)
    assert file_bytes(tmp_path) == before


def test_failed_replace_leaves_only_complete_files(
    report: Report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = file_bytes(write_report(report, tmp_path / "fresh").files[0].parent)
    target = tmp_path / "target"
    target.mkdir()
    for name in ALL_FILES:
        (target / name).write_bytes(b"old " + name.encode())
    real_replace = os.replace
    calls = {"n": 0}

    def flaky_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(5, "I/O error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError, match="I/O error"):
        write_report(report, target)
    after = file_bytes(target)
    assert sorted(after) == sorted(ALL_FILES)  # no temporaries left behind
    assert after["hours-2026-10.csv"] == expected["hours-2026-10.csv"]
    for name in ALL_FILES[1:]:
        assert after[name] == b"old " + name.encode()


# --------------------------------------------------------------------------- property

NAMES = st.sampled_from(["Ada", "ada", "Zoë Müller", "Bob", "=evil", "李雷"])


@st.composite
def report_lines(draw: st.DrawFn) -> list[ReportLine]:
    count = draw(st.integers(min_value=0, max_value=40))
    result = []
    for index in range(count):
        is_mapped = draw(st.booleans())
        common: dict[str, Any] = {
            "source": draw(st.sampled_from(["asana", "clickup", "monday"])),
            "account": draw(st.sampled_from(["a", "b"])),
            "work_date": draw(st.dates(min_value=OCTOBER.start, max_value=OCTOBER.end)),
            "seconds": draw(st.integers(min_value=0, max_value=10 * 86400)),
            "contractor": draw(NAMES),
            "billable": draw(st.booleans()),
        }
        if is_mapped:
            line = make_line(
                str(index),
                code=draw(st.sampled_from(["A-1", "A-2", "B-1"])),
                cost_center=draw(st.sampled_from(["CC-1", "CC-2", None])),
                client=draw(st.sampled_from(["Acme", None])),
                **common,
            )
        else:
            line = unmapped(
                str(index),
                draw(st.sampled_from(["no_rule_matched", "inactive_code", ""])),
                draw(st.sampled_from(["x", "y", ""])),
                **common,
            )
        result.append(line)
    return result


@settings(max_examples=150, deadline=None, database=None)
@given(report_lines())
def test_property_grand_total_equals_inputs_and_leaves(lines: list[ReportLine]) -> None:
    built = build_report(OCTOBER, lines)
    total = sum(line.seconds for line in lines)
    assert built.totals.seconds == total
    assert built.totals.entries == len(lines)
    leaves = sum(p.tally.seconds for cc in built.cost_centers for code in cc.codes for p in code.contractors)
    unmapped_seconds = sum(group.tally.seconds for group in built.unmapped)
    assert leaves + unmapped_seconds == total
    assert built.totals.mapped_seconds == leaves
    assert built.totals.unmapped_seconds == unmapped_seconds
    assert built.totals.billable_seconds == sum(line.seconds for line in lines if line.billable and line.mapped)
    assert built.totals.billable_seconds + built.totals.nonbillable_seconds == built.totals.mapped_seconds
    assert sum(len(group.lines) for group in built.unmapped) == built.totals.unmapped_entries
    assert sorted(line.external_id for line in built.lines) == sorted(line.external_id for line in lines)
    assert build_report(OCTOBER, list(reversed(lines))) == built
