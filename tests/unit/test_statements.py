"""Tests for contractor statements and the file sink: own data only, exact totals, files, atomicity."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import time
import zipfile
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.errors import ConfigError
from sync.reporting.files import FileSink
from sync.reporting.model import Period, ReportLine, build_report
from sync.reporting.statement_files import statement_folder, write_statement_files, write_statements
from sync.reporting.statements import Statement, build_statements, contractor_slug

OCTOBER = Period.month("2026-10")
ADA, BOB = "Ada Lovelace", "Bob Builder"
FORMATS = ("csv", "xlsx", "json")


def make_line(external_id: str, **overrides: Any) -> ReportLine:
    values: dict[str, Any] = {
        "source": "asana",
        "account": "ws-1",
        "external_id": external_id,
        "work_date": date(2026, 10, 5),
        "seconds": 3600,
        "person_id": "u-ada",
        "person_name": ADA,
        "contractor": ADA,
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
        "description": "header markup",
        "version": 1,
    }
    values.update(overrides)
    return ReportLine(**values)


def uncoded(external_id: str, reason: str = "no_rule_matched", **overrides: Any) -> ReportLine:
    values: dict[str, Any] = {
        "code": None,
        "code_name": None,
        "client": None,
        "cost_center": None,
        "rule_id": None,
        "billable": False,
        "unmapped_reason": reason,
        "unmapped_detail": f"no rule matches project of {external_id}",
    }
    values.update(overrides)
    return make_line(external_id, **values)


def bob(**overrides: Any) -> dict[str, Any]:
    return {"person_id": "u-bob", "person_name": BOB, "contractor": BOB, **overrides}


@pytest.fixture
def lines() -> list[ReportLine]:
    return [
        make_line("a1", seconds=5400),
        make_line("a2", work_date=date(2026, 10, 6), seconds=1800, task="Fix footer", description="footer"),
        make_line(
            "a3",
            code="GLOBEX-APP",
            code_name="Globex app",
            client="Globex",
            cost_center="CC-300",
            seconds=2700,
            task="Login screen",
        ),
        make_line("a4", seconds=45, work_date=date(2026, 10, 5)),
        uncoded("a5", seconds=900, task="Unlabelled call", description="call notes"),
        make_line(
            "b1",
            **bob(
                seconds=7200,
                task="Secret merger deck",
                container="Initech / Board",
                description="bob private note",
                code="INITECH-BOARD",
                code_name="Initech board",
                client="Initech",
            ),
        ),
        uncoded("b2", **bob(seconds=600, task="Bob lunch sync", description="bob unmapped note")),
        uncoded(
            "c1",
            "code_inactive",
            contractor="Cy Only-Uncoded",
            person_name="Cy",
            person_id="u-cy",
            seconds=1234,
            task="Cy drafts",
        ),
    ]


@pytest.fixture
def statements(lines: list[ReportLine]) -> list[Statement]:
    return build_statements(OCTOBER, lines)


def by_name(statements: list[Statement], name: str) -> Statement:
    return next(s for s in statements if s.contractor == name)


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"), newline="")))


def texts_of(path: Path) -> str:
    """Every text a file holds; an XLSX's parts are read one by one (they are stored uncompressed anyway)."""
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(path) as archive:
            return "\n".join(archive.read(name).decode("utf-8") for name in archive.namelist())
    return path.read_text(encoding="utf-8")


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --------------------------------------------------------------------------- model


def test_one_statement_per_contractor_including_all_uncoded(statements: list[Statement]) -> None:
    assert [s.contractor for s in statements] == [ADA, BOB, "Cy Only-Uncoded"]
    cy = by_name(statements, "Cy Only-Uncoded")
    assert cy.codes == ()
    assert cy.coded.seconds == 0
    assert cy.not_yet_coded.seconds == cy.total.seconds == 1234
    assert [e.not_coded_reason for e in cy.uncoded_entries] == ["code_inactive"]


def test_days_codes_and_totals_are_exact_sums(statements: list[Statement], lines: list[ReportLine]) -> None:
    ada = by_name(statements, ADA)
    assert [(d.work_date.day, d.code, d.tally.entries, d.tally.seconds) for d in ada.days] == [
        (5, "ACME-WEB", 2, 5445),
        (5, "GLOBEX-APP", 1, 2700),
        (5, None, 1, 900),
        (6, "ACME-WEB", 1, 1800),
    ]
    assert ada.days[2].code_name == "not yet coded"
    assert [(c.code, c.code_name, c.client, c.tally.seconds) for c in ada.codes] == [
        ("ACME-WEB", "Acme website", "Acme", 7245),
        ("GLOBEX-APP", "Globex app", "Globex", 2700),
    ]
    own = [line for line in lines if line.contractor == ADA]
    assert ada.total.seconds == sum(line.seconds for line in own) == 10845
    assert ada.total.entries == len(own)
    assert ada.coded.seconds + ada.not_yet_coded.seconds == ada.total.seconds
    assert ada.total.hours == Decimal("3.01")  # 10845 s = 3.0125 h, half up
    assert ada.total.minutes == Decimal("180.75")
    assert ada.report_name == "hours-2026-10"


def test_totals_equal_the_contractors_seconds_in_the_report(
    statements: list[Statement], lines: list[ReportLine]
) -> None:
    report = build_report(OCTOBER, lines)
    for statement in statements:
        mapped = sum(
            person.tally.seconds
            for cc in report.cost_centers
            for code in cc.codes
            for person in code.contractors
            if person.contractor == statement.contractor
        )
        unmapped = sum(
            line.seconds for group in report.unmapped for line in group.lines if line.contractor == statement.contractor
        )
        assert statement.coded.seconds == mapped
        assert statement.not_yet_coded.seconds == unmapped
        assert statement.total.seconds == mapped + unmapped


def test_only_own_entries_in_the_model(statements: list[Statement]) -> None:
    ada = by_name(statements, ADA)
    assert {e.task for e in ada.entries} == {"Build header", "Fix footer", "Login screen", "Unlabelled call"}
    assert "INITECH-BOARD" not in {c.code for c in ada.codes}


def test_input_order_does_not_matter(lines: list[ReportLine], statements: list[Statement]) -> None:
    shuffled = list(lines)
    random.Random(4).shuffle(shuffled)
    assert build_statements(OCTOBER, shuffled) == statements


def test_rejects_lines_that_would_break_the_totals() -> None:
    with pytest.raises(ValueError, match="outside period 2026-10"):
        build_statements(OCTOBER, [make_line("x", work_date=date(2026, 11, 1))])
    with pytest.raises(ValueError, match="more than once"):
        build_statements(OCTOBER, [make_line("x"), make_line("x")])


def test_empty_period_has_no_statements() -> None:
    assert build_statements(OCTOBER, []) == []


# --------------------------------------------------------------------------- slugs


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Zoë Müller", "zoe-muller"),
        ("Jürgen Strauß", "jurgen-strauss"),
        ("  O'Brien, Pat  ", "o-brien-pat"),
        ("../../etc/passwd", "etc-passwd"),
        ("李雷", "contractor"),
        ("", "contractor"),
        ("CON", "con-contractor"),
        ("ada@example.com", "email"),
        ("Ada <ada.l@mail.example.org>", "ada-email"),
        ("x" * 200, "x" * 64),
    ],
)
def test_slug_is_filesystem_safe_and_never_an_email(name: str, slug: str) -> None:
    assert contractor_slug(name) == slug


def test_slug_collisions_are_numbered_deterministically() -> None:
    names = ["ada", "Ada", "ADA", "Ada 2", "Adä"]
    lines = [make_line(str(i), contractor=name) for i, name in enumerate(names)]
    slugs = {s.contractor: s.slug for s in build_statements(OCTOBER, lines)}
    assert slugs == {"ADA": "ada", "Ada": "ada-3", "ada": "ada-4", "Ada 2": "ada-2", "Adä": "ada-5"}
    assert {s.contractor: s.slug for s in build_statements(OCTOBER, list(reversed(lines)))} == slugs


def test_names_that_mask_alike_stay_apart(tmp_path: Path) -> None:
    lines = [
        make_line("1", contractor="ann@example.com", task="Ann task"),
        make_line("2", contractor="ben@example.org", task="Ben task"),
    ]
    built = build_statements(OCTOBER, lines)
    assert [(s.contractor, s.slug, [e.task for e in s.entries]) for s in built] == [
        ("[email]", "email", ["Ann task"]),
        ("[email]", "email-2", ["Ben task"]),
    ]
    for path in write_statements(built, tmp_path):
        assert "@" not in path.name
        assert "example" not in texts_of(path)


# --------------------------------------------------------------------------- files


def test_layout_and_only_own_data_in_every_file(
    statements: list[Statement], lines: list[ReportLine], tmp_path: Path
) -> None:
    written = write_statement_files(OCTOBER, statements, tmp_path, FORMATS)
    folder = tmp_path / "statements" / "2026-10"
    assert written.folder == folder == statement_folder(tmp_path, OCTOBER)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{slug}.{ext}" for slug in ("ada-lovelace", "bob-builder", "cy-only-uncoded") for ext in FORMATS
    )
    others = [BOB, "Bob", "Secret merger deck", "Initech", "bob private note", "Bob lunch sync", "bob unmapped note"]
    others += ["Cy", "code_inactive", "u-bob", "u-cy"]
    period_total = str(sum(line.seconds for line in lines))
    for ext in FORMATS:
        text = texts_of(folder / f"ada-lovelace.{ext}")
        assert ADA in text
        assert "Unlabelled call" in text and "call notes" in text
        for foreign in others:
            assert foreign not in text, (ext, foreign)
        # Nothing of the period as a whole, and no admin internals (cost centers, mapping diagnostics).
        for absent in (period_total, "CC-200", "no rule matches", "r-web"):
            assert absent not in text, (ext, absent)


def test_csv_sections_and_numbers(statements: list[Statement], tmp_path: Path) -> None:
    write_statements(statements, tmp_path, ["csv"])
    rows = read_csv(tmp_path / "statements" / "2026-10" / "ada-lovelace.csv")
    assert {r["contractor"] for r in rows} == {ADA}
    assert {r["period"] for r in rows} == {"2026-10"}
    sections = [r["section"] for r in rows]
    assert sections == ["day"] * 4 + ["code"] * 2 + ["not_yet_coded", "total"] + ["entry"] * 5 + ["not_yet_coded_entry"]
    total = next(r for r in rows if r["section"] == "total")
    assert (total["entries"], total["seconds"], total["minutes"], total["hours"]) == ("5", "10845", "180.75", "3.01")
    assert sum(int(r["seconds"]) for r in rows if r["section"] == "day") == 10845
    assert sum(int(r["seconds"]) for r in rows if r["section"] == "entry") == 10845
    assert [(r["seconds"], r["minutes"], r["hours"]) for r in rows if r["section"] == "entry"] == [
        ("5400", "90.00", "1.50"),
        ("2700", "45.00", "0.75"),
        ("45", "0.75", "0.01"),
        ("900", "15.00", "0.25"),
        ("1800", "30.00", "0.50"),
    ]
    uncoded_row = next(r for r in rows if r["section"] == "not_yet_coded_entry")
    assert (uncoded_row["task"], uncoded_row["not_coded_reason"], uncoded_row["code"]) == (
        "Unlabelled call",
        "no_rule_matched",
        "",
    )
    assert rows[0] == {
        "section": "day",
        "contractor": ADA,
        "period": "2026-10",
        "work_date": "2026-10-05",
        "code": "ACME-WEB",
        "code_name": "Acme website",
        "client": "Acme",
        "source": "",
        "task": "",
        "container": "",
        "not_coded_reason": "",
        "description": "",
        "entries": "2",
        "seconds": "5445",
        "minutes": "90.75",
        "hours": "1.51",
    }


@pytest.mark.parametrize("trigger", ["=", "+", "-", "@"])
def test_csv_formula_injection_guard(trigger: str, tmp_path: Path) -> None:
    hostile = f"{trigger}HYPERLINK(1)"
    line = make_line("x", contractor=hostile, task=hostile, container=hostile, description=hostile, code_name=hostile)
    write_statements(build_statements(OCTOBER, [line]), tmp_path, ["csv"])
    (path,) = (tmp_path / "statements" / "2026-10").iterdir()
    rows = read_csv(path)
    for row in rows:
        assert row["contractor"] == "'" + hostile
    entry = next(r for r in rows if r["section"] == "entry")
    for column in ("task", "container", "description", "code_name"):
        assert entry[column] == "'" + hostile


def test_xlsx_holds_the_same_numbers_as_json(statements: list[Statement], tmp_path: Path) -> None:
    write_statements(statements, tmp_path, ["xlsx", "json"])
    folder = tmp_path / "statements" / "2026-10"
    data = json.loads((folder / "ada-lovelace.json").read_text(encoding="utf-8"))
    book = openpyxl.load_workbook(folder / "ada-lovelace.xlsx")
    assert book.sheetnames == ["Statement", "Summary", "Entries", "Not yet coded"]

    header = {row[0]: row[1] for row in book["Statement"].iter_rows(min_row=2, values_only=True)}
    assert header["contractor"] == data["statement"]["contractor"] == ADA
    assert header["period"] == data["statement"]["period"]["label"] == "2026-10"
    assert header["report"] == data["statement"]["report"] == "hours-2026-10"
    assert Decimal(str(header["hours"])) == Decimal(data["totals"]["hours"]) == Decimal("3.01")

    summary = [dict(zip(SUMMARY, row, strict=True)) for row in book["Summary"].iter_rows(min_row=2, values_only=True)]
    days = [r for r in summary if r["section"] == "day"]
    assert [(r["code"], r["seconds"]) for r in days] == [(d["code"], d["seconds"]) for d in data["days"]]
    assert [Decimal(str(r["hours"])) for r in days] == [Decimal(d["hours"]) for d in data["days"]]
    codes = [r for r in summary if r["section"] == "code"]
    assert [(r["code"], r["seconds"]) for r in codes] == [(c["code"], c["seconds"]) for c in data["codes"]]
    total = next(r for r in summary if r["section"] == "total")
    assert total["seconds"] == data["totals"]["seconds"] == 10845
    assert data["totals"]["coded"]["seconds"] + data["totals"]["not_yet_coded"]["seconds"] == 10845
    assert data["totals"]["checks"] == {"total_equals_coded_plus_not_yet_coded": True}

    entries = list(book["Entries"].iter_rows(min_row=2, values_only=True))
    assert [row[-3] for row in entries] == [e["seconds"] for e in data["entries"]]
    uncoded_rows = list(book["Not yet coded"].iter_rows(min_row=2, values_only=True))
    assert [(row[2], row[-3]) for row in uncoded_rows] == [
        (e["task"], e["seconds"]) for e in data["not_yet_coded"]["entries"]
    ]


SUMMARY = ("section", "work_date", "code", "code_name", "client", "entries", "seconds", "minutes", "hours")


def test_xlsx_keeps_formula_like_text_as_text(tmp_path: Path) -> None:
    write_statements(build_statements(OCTOBER, [make_line("x", task="=1+1")]), tmp_path, ["xlsx"])
    book = openpyxl.load_workbook(tmp_path / "statements" / "2026-10" / "ada-lovelace.xlsx")
    cell = book["Entries"]["C2"]
    assert (cell.value, cell.data_type) == ("=1+1", "s")


def test_dropped_descriptions_leave_no_column(lines: list[ReportLine], tmp_path: Path) -> None:
    built = build_statements(OCTOBER, lines, descriptions=False)
    assert {entry.description for s in built for entry in s.entries} == {""}
    write_statements(built, tmp_path)
    folder = tmp_path / "statements" / "2026-10"
    assert "description" not in read_csv(folder / "ada-lovelace.csv")[0]
    assert all("description" not in e for e in json.loads((folder / "ada-lovelace.json").read_bytes())["entries"])
    for ext in FORMATS:
        assert "header markup" not in texts_of(folder / f"ada-lovelace.{ext}")


def test_byte_identical_across_runs_and_clocks(
    lines: list[ReportLine], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_statements(build_statements(OCTOBER, lines), tmp_path / "first")
    later = time.time() + 400 * 86400 + 3723
    monkeypatch.setattr(time, "time", lambda: later)
    write_statements(build_statements(OCTOBER, list(reversed(lines))), tmp_path / "second")
    first = file_bytes(tmp_path / "first" / "statements" / "2026-10")
    assert len(first) == 9
    assert first == file_bytes(tmp_path / "second" / "statements" / "2026-10")
    with zipfile.ZipFile(tmp_path / "second" / "statements" / "2026-10" / "ada-lovelace.xlsx") as archive:
        assert {info.date_time for info in archive.infolist()} == {(2026, 10, 31, 0, 0, 0)}


def test_unchanged_files_are_left_alone(statements: list[Statement], tmp_path: Path) -> None:
    first = write_statement_files(OCTOBER, statements, tmp_path)
    assert first.changed == first.files
    folder = first.folder
    inodes = {p.name: p.stat().st_ino for p in folder.iterdir()}
    (folder / "bob-builder.json").write_bytes(b"stale\n")
    again = write_statement_files(OCTOBER, statements, tmp_path)
    assert again.files == first.files
    assert again.changed == (folder / "bob-builder.json",)
    assert {p.name: p.stat().st_ino == inodes[p.name] for p in folder.iterdir()} == {
        name: name != "bob-builder.json" for name in inodes
    }


def test_writes_leave_no_temporary_files(statements: list[Statement], tmp_path: Path) -> None:
    write_statements(statements, tmp_path)
    write_statements(statements[:1], tmp_path)
    assert all(not p.name.startswith(".") for p in (tmp_path / "statements" / "2026-10").iterdir())


def test_failed_write_leaves_old_files_and_no_temporaries(
    statements: list[Statement], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = statement_folder(tmp_path, OCTOBER)
    folder.mkdir(parents=True)
    (folder / "ada-lovelace.json").write_bytes(b"{}\n")
    (folder / "gone.csv").write_bytes(b"old\r\n")
    before = file_bytes(folder)
    calls = {"n": 0}
    real_fsync = os.fsync

    def flaky_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", flaky_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_statements(statements, tmp_path)
    assert file_bytes(folder) == before  # nothing replaced, nothing pruned, no temporaries


def test_stale_statements_are_removed_and_nothing_else(lines: list[ReportLine], tmp_path: Path) -> None:
    write_statements(build_statements(OCTOBER, lines), tmp_path)
    folder = statement_folder(tmp_path, OCTOBER)
    for name in ("notes.txt", "Bob.csv", "bob_builder.csv", "bob-builder.csv.bak"):
        (folder / name).write_bytes(b"keep")
    (folder / "sub.json").mkdir()
    without_bob = [line for line in lines if line.contractor != BOB]
    written = write_statement_files(OCTOBER, build_statements(OCTOBER, without_bob), tmp_path)
    assert [p.name for p in written.removed] == ["bob-builder.csv", "bob-builder.json", "bob-builder.xlsx"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"{slug}.{ext}" for slug in ("ada-lovelace", "cy-only-uncoded") for ext in FORMATS]
        + ["notes.txt", "Bob.csv", "bob_builder.csv", "bob-builder.csv.bak", "sub.json"]
    )
    other_period = statement_folder(tmp_path, Period.month("2026-09"))
    other_period.mkdir(parents=True)
    (other_period / "bob-builder.csv").write_bytes(b"september")

    emptied = write_statement_files(OCTOBER, [], tmp_path)
    assert {p.name for p in emptied.removed} == {
        f"{s}.{e}" for s in ("ada-lovelace", "cy-only-uncoded") for e in FORMATS
    }
    assert (other_period / "bob-builder.csv").read_bytes() == b"september"


def test_one_contractor_without_pruning_keeps_the_others(statements: list[Statement], tmp_path: Path) -> None:
    write_statements(statements, tmp_path, ["json"])
    only_bob = [s for s in statements if s.contractor == BOB]
    written = write_statement_files(OCTOBER, only_bob, tmp_path, ["json"], prune=False)
    assert written.removed == ()
    assert len(list(written.folder.iterdir())) == 3


def test_rejects_statements_of_another_period_or_clashing_names(statements: list[Statement], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not 2026-09"):
        write_statement_files(Period.month("2026-09"), statements, tmp_path)
    with pytest.raises(ValueError, match="share a file name"):
        write_statement_files(OCTOBER, [statements[0], statements[0]], tmp_path)
    with pytest.raises(ValueError, match="unknown report format"):
        write_statements(statements, tmp_path, ["pdf"])
    assert not (tmp_path / "statements").exists()


# --------------------------------------------------------------------------- FileSink


def test_file_sink_writes_report_and_statements_then_nothing(lines: list[ReportLine], tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "out")
    sink.check()
    first = sink.write_period(OCTOBER, lines, formats=["csv", "json"], statements=True)
    report_files = {"hours-2026-10.csv", "entries-2026-10.csv", "unmapped-2026-10.csv", "hours-2026-10.json"}
    statement_files = {f"{s}.{e}" for s in ("ada-lovelace", "bob-builder", "cy-only-uncoded") for e in ("csv", "json")}
    assert {p.name for p in first.written} == report_files | statement_files
    assert first.unchanged == first.removed == ()
    assert first.statements == 3
    assert first.totals.seconds == sum(line.seconds for line in lines)
    assert first.totals.reconciles

    again = sink.write_period(OCTOBER, list(reversed(lines)), formats=["csv", "json"], statements=True)
    assert again.written == ()
    assert set(again.unchanged) == set(first.written) == set(again.files)

    without_cy = [line for line in lines if not line.contractor.startswith("Cy")]
    third = sink.write_period(OCTOBER, without_cy, formats=["csv", "json"], statements=True)
    assert {p.name for p in third.removed} == {"cy-only-uncoded.csv", "cy-only-uncoded.json"}
    assert {p.name for p in third.written} == report_files


def test_file_sink_without_statements_touches_only_the_report(lines: list[ReportLine], tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    delivery = sink.write_period(OCTOBER, lines, formats=["json"], statements=False)
    assert [p.name for p in delivery.written] == ["hours-2026-10.json"]
    assert delivery.statements == 0
    assert not (tmp_path / "statements").exists()


def test_file_sink_drops_descriptions_from_statements(lines: list[ReportLine], tmp_path: Path) -> None:
    FileSink(tmp_path, drop_descriptions=True).write_period(OCTOBER, lines, formats=["json"], statements=True)
    data = json.loads((statement_folder(tmp_path, OCTOBER) / "ada-lovelace.json").read_bytes())
    assert all("description" not in entry for entry in data["entries"])


def test_file_sink_check_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "taken").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"HOURBRIDGE_OUTPUT_DIR .* is a file"):
        FileSink(tmp_path / "taken").check()
    with pytest.raises(ConfigError, match=r"HOURBRIDGE_OUTPUT_DIR .* cannot be written"):
        FileSink(tmp_path / "taken" / "below").check()
    FileSink(tmp_path / "new" / "folder").check()
    assert FileSink.name == "files"


# --------------------------------------------------------------------------- property

NAMES = st.sampled_from(["Ada", "ada", "Zoë Müller", "Bob", "=evil", "李雷", "x@example.com", "y@example.com"])


@st.composite
def report_lines(draw: st.DrawFn) -> list[ReportLine]:
    result = []
    for index in range(draw(st.integers(min_value=0, max_value=30))):
        common: dict[str, Any] = {
            "source": draw(st.sampled_from(["asana", "clickup", "monday"])),
            "work_date": draw(st.dates(min_value=OCTOBER.start, max_value=OCTOBER.end)),
            "seconds": draw(st.integers(min_value=0, max_value=10 * 86400)),
            "contractor": draw(NAMES),
        }
        if draw(st.booleans()):
            result.append(make_line(str(index), code=draw(st.sampled_from(["A-1", "A-2", "B-1"])), **common))
        else:
            result.append(uncoded(str(index), draw(st.sampled_from(["no_rule_matched", ""])), **common))
    return result


@settings(max_examples=120, deadline=None, database=None)
@given(report_lines())
def test_property_statements_partition_the_report(lines: list[ReportLine]) -> None:
    report = build_report(OCTOBER, lines)
    built = build_statements(OCTOBER, lines)
    assert sum(s.total.seconds for s in built) == report.totals.seconds
    assert sum(s.coded.seconds for s in built) == report.totals.mapped_seconds
    assert sum(s.not_yet_coded.seconds for s in built) == report.totals.unmapped_seconds
    assert sum(s.total.entries for s in built) == report.totals.entries
    assert len(built) == len({line.contractor for line in lines})
    assert len({s.slug for s in built}) == len(built)
    for statement in built:
        assert sum(d.tally.seconds for d in statement.days) == statement.total.seconds
        assert sum(e.seconds for e in statement.entries) == statement.total.seconds


# --------------------------------------------------------------------------- bills from the invoice check


def test_a_statement_gets_a_line_per_bill_and_the_others_stay_as_they_were(
    lines: list[ReportLine], tmp_path: Path
) -> None:
    from sync.reporting.statements import StatementBill, statement_bills

    plain = tmp_path / "plain"
    write_statement_files(OCTOBER, build_statements(OCTOBER, lines), plain, FORMATS)
    stored = [
        {
            "contractor": ADA,
            "bills": [
                {
                    "sink": "xero",
                    "number": "B-7",
                    "bill_date": "2026-10-31",
                    "billed_seconds": 12600,
                    "logged_seconds": 12645,
                    "matches": False,
                    "findings": ["rate_differs"],
                }
            ],
        }
    ]
    bills = statement_bills([{"contractors": stored}, {"contractors": [{"contractor": ADA, "bills": []}]}])
    assert bills == {ADA: (StatementBill("xero", "B-7", date(2026, 10, 31), 12600, 12645, False, ("rate_differs",)),)}
    billed = tmp_path / "billed"
    written = write_statement_files(OCTOBER, build_statements(OCTOBER, lines, bills=bills), billed, FORMATS)
    ada = contractor_slug(ADA)
    payload = json.loads((billed / "statements" / "2026-10" / f"{ada}.json").read_text(encoding="utf-8"))
    assert payload["bills"] == [
        {
            "bill_date": "2026-10-31",
            "billed_seconds": 12600,
            "findings": ["rate_differs"],
            "logged_seconds": 12645,
            "matches": False,
            "number": "B-7",
            "sink": "xero",
            "verdict": "outside tolerance: rate_differs",
        }
    ]
    rows = [r for r in read_csv(billed / "statements" / "2026-10" / f"{ada}.csv") if r["section"] == "bill"]
    assert [(r["bill_number"], r["billed_hours"], r["verdict"]) for r in rows] == [
        ("B-7", "3.50", "outside tolerance: rate_differs")
    ]
    workbook = openpyxl.load_workbook(billed / "statements" / "2026-10" / f"{ada}.xlsx")
    assert "Bills" in workbook.sheetnames
    # Everyone without bills gets exactly the statement they had before.
    before, after = file_bytes(plain / "statements" / "2026-10"), file_bytes(billed / "statements" / "2026-10")
    assert {n for n in before if before[n] != after[n]} == {f"{ada}.csv", f"{ada}.json", f"{ada}.xlsx"}
    assert len(written.files) == len(before)
