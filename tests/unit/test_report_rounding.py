"""Displayed hours add up at every level of a report: largest-remainder rounding, unmapped kept apart."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.reporting.model import Period, Report, ReportLine, Shown, Tally, allocate, build_report, round_half_up
from sync.reporting.output import write_report

OCTOBER = Period.month("2026-10")
BASE = ReportLine(
    source="asana",
    account="ws-1",
    external_id="",
    work_date=date(2026, 10, 5),
    seconds=0,
    person_id="u",
    person_name="",
    contractor="",
    code="WEB",
    code_name="Website",
    client="Acme",
    cost_center="CC-1",
    billable=True,
    rule_id="r1",
    unmapped_reason=None,
    unmapped_detail=None,
    task="",
    container="",
    description="",
    version=1,
)


def line(external_id: str, seconds: int, contractor: str, **overrides: object) -> ReportLine:
    return replace(
        BASE,
        external_id=external_id,
        seconds=seconds,
        contractor=contractor,
        person_name=contractor,
        **overrides,  # type: ignore[arg-type]
    )


def test_allocate_gives_the_missing_hundredths_to_the_largest_remainders() -> None:
    # Three thirds of an hour: 0.333.. each, 1.00 in all; rounding each alone shows 0.99.
    assert allocate(100, [1200, 1200, 1200], 3600) == [34, 33, 33]
    assert allocate(100, [1000, 1300, 1300], 3600) == [28, 36, 36]
    assert allocate(0, [], 3600) == []
    with pytest.raises(ValueError, match="cannot be shared"):
        allocate(105, [1200, 1200, 1200], 3600)


def test_contractor_rows_sum_to_the_code_row_where_rounding_each_would_not() -> None:
    # Three people, 20 minutes each: alone each rounds to 0.33 h, yet the code holds 1.00 h.
    lines = [line(f"e{i}", 1200, name) for i, name in enumerate(["Ann", "Bea", "Cy"])]
    report = build_report(OCTOBER, lines)
    code = report.cost_centers[0].codes[0]
    assert [round_half_up(p.tally.seconds, 3600) for p in code.contractors] == [Decimal("0.33")] * 3
    assert code.shown.hours == Decimal("1.00")
    assert [p.shown.hours for p in code.contractors] == [Decimal("0.34"), Decimal("0.33"), Decimal("0.33")]
    assert sum(p.shown.hours for p in code.contractors) == code.shown.hours


def test_unmapped_time_is_its_own_column_never_non_billable(tmp_path: Path) -> None:
    lines = [
        line("b", 3600, "Ann"),
        line("n", 1800, "Ann", billable=False),
        # Marked billable in its tool, but without a code nobody can bill it yet.
        line(
            "u",
            900,
            "Bea",
            code=None,
            code_name=None,
            cost_center=None,
            rule_id=None,
            unmapped_reason="no_rule_matched",
            unmapped_detail="project X",
        ),
    ]
    report = build_report(OCTOBER, lines)
    assert report.total == Tally(3, 6300, 3600, 1800, 900)
    assert report.shown_total.billable_hours == Decimal("1.00")
    assert report.shown_total.nonbillable_hours == Decimal("0.50")
    assert report.shown_total.unmapped_hours == Decimal("0.25")
    write_report(report, tmp_path, formats=["csv"])
    with (tmp_path / "hours-2026-10.csv").open(encoding="utf-8-sig", newline="") as stream:
        rows = {row["level"]: row for row in csv.DictReader(stream)}
    assert (rows["total"]["nonbillable_hours"], rows["total"]["unmapped_hours"]) == ("0.50", "0.25")
    assert (rows["unmapped"]["nonbillable_hours"], rows["unmapped"]["unmapped_hours"]) == ("0.00", "0.25")
    assert rows["unmapped"]["unmapped_reason"] == "no_rule_matched"
    assert rows["mapped_total"]["hours"] == "1.50"
    assert {row["period"] for row in rows.values()} == {"2026-10"}


def _children_add_up(parent: Shown, children: list[Shown]) -> None:
    for column in ("billable", "nonbillable", "unmapped", "minute_hundredths"):
        assert sum(getattr(child, column) for child in children) == getattr(parent, column), column
    assert sum(child.hours for child in children) == parent.hours


def _close_to_exact(shown: Shown, tally: Tally) -> None:
    # Each column is its exact value rounded down or up: never off by a whole hundredth or more.
    for hundredths, seconds in (
        (shown.billable, tally.billable_seconds),
        (shown.nonbillable, tally.nonbillable_seconds),
        (shown.unmapped, tally.unmapped_seconds),
    ):
        assert abs(hundredths * 36 - seconds) < 36
    assert abs(shown.minute_hundredths * 60 - tally.seconds * 100) < 60


def check_adds_up(report: Report) -> None:
    _children_add_up(report.shown_total, [report.shown_mapped, report.shown_unmapped])
    _children_add_up(report.shown_mapped, [cc.shown for cc in report.cost_centers])
    _children_add_up(report.shown_unmapped, [group.shown for group in report.unmapped])
    assert report.shown_total.hours == round_half_up(report.total.seconds, 3600)
    assert report.shown_mapped.unmapped == 0
    assert report.shown_unmapped.billable == report.shown_unmapped.nonbillable == 0
    _close_to_exact(report.shown_total, report.total)
    for cc in report.cost_centers:
        _children_add_up(cc.shown, [code.shown for code in cc.codes])
        _close_to_exact(cc.shown, cc.tally)
        for code in cc.codes:
            _children_add_up(code.shown, [person.shown for person in code.contractors])
            _close_to_exact(code.shown, code.tally)
            for person in code.contractors:
                _close_to_exact(person.shown, person.tally)
                assert person.shown.billable_hours + person.shown.nonbillable_hours == person.shown.hours
    for group in report.unmapped:
        _close_to_exact(group.shown, group.tally)


@st.composite
def report_lines(draw: st.DrawFn) -> list[ReportLine]:
    count = draw(st.integers(min_value=0, max_value=30))
    result = []
    for index in range(count):
        seconds = draw(st.integers(min_value=0, max_value=20_000))
        contractor = draw(st.sampled_from(["Ann", "Bea", "Cy", "Dee"]))
        if draw(st.booleans()):
            result.append(
                line(
                    str(index),
                    seconds,
                    contractor,
                    code=draw(st.sampled_from(["WEB", "APP", "SEO"])),
                    cost_center=draw(st.sampled_from(["CC-1", "CC-2"])),
                    billable=draw(st.booleans()),
                )
            )
        else:
            result.append(
                line(
                    str(index),
                    seconds,
                    contractor,
                    code=None,
                    code_name=None,
                    cost_center=None,
                    billable=draw(st.booleans()),
                    unmapped_reason=draw(st.sampled_from(["no_rule_matched", "inactive_code"])),
                    unmapped_detail=draw(st.sampled_from(["x", "y"])),
                )
            )
    return result


@settings(max_examples=200, deadline=None, database=None)
@given(report_lines())
def test_property_displayed_hours_add_up_at_every_level(lines: list[ReportLine]) -> None:
    check_adds_up(build_report(OCTOBER, lines))


def test_csv_rows_add_up_as_a_spreadsheet_sums_them(tmp_path: Path) -> None:
    # Awkward seconds (not whole hundredths of an hour) spread over people, codes and cost centers.
    seconds = [37, 1201, 599, 3599, 2222, 61, 119, 1799, 7, 4444, 3333]
    lines = [
        line(
            str(i),
            s,
            ["Ann", "Bea", "Cy"][i % 3],
            code=["WEB", "APP"][i % 2],
            cost_center=["CC-1", "CC-2"][i % 2 and 1],
        )
        for i, s in enumerate(seconds)
    ]
    write_report(build_report(OCTOBER, lines), tmp_path, formats=["csv"])
    with (tmp_path / "hours-2026-10.csv").open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    pending: list[dict[str, str]] = []
    for row in rows:
        hours = Decimal(row["hours"])
        assert (
            Decimal(row["billable_hours"]) + Decimal(row["nonbillable_hours"]) + Decimal(row["unmapped_hours"]) == hours
        )
        if row["level"] == "contractor":
            pending.append(row)
        elif row["level"] == "code":
            assert sum(Decimal(p["hours"]) for p in pending) == hours
            assert sum(Decimal(p["billable_hours"]) for p in pending) == Decimal(row["billable_hours"])
            assert sum(Decimal(p["minutes"]) for p in pending) == Decimal(row["minutes"])
            pending = []
    codes = [Decimal(r["hours"]) for r in rows if r["level"] == "code"]
    total = next(r for r in rows if r["level"] == "total")
    assert sum(codes) == Decimal(total["hours"]) == round_half_up(sum(seconds), 3600)


def test_mapped_and_unmapped_hours_of_a_summary_line_add_up() -> None:
    from sync.reporting.model import hours_that_add_up

    # 18 s each round to 0.01 h alone, but both together are 0.01 h.
    assert hours_that_add_up([18, 18]) == ("0.01", ["0.01", "0.00"])
    assert hours_that_add_up([3600, 1800]) == ("1.50", ["1.00", "0.50"])
    assert hours_that_add_up([0, 0]) == ("0.00", ["0.00", "0.00"])
