"""FileSink: the accounting sink kept as monthly CSV files behaves like the vendors' sinks."""

from __future__ import annotations

import csv
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from connectors.base import FileOutput, Sink
from connectors.delivery import Line, Op
from connectors.errors import ConfigError
from connectors.files.sink import HEADERS, FileSink, file_name

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _line(key: str, day: date, seconds: int, *, version: int = 1, rate: str | None = "80") -> Line:
    return Line(
        sink="files",
        line_key=key,
        version=version,
        work_date=day,
        period_end=day,
        person="ada@example.test",
        payee="Ada Lovelace",
        code="WEB",
        client="Acme",
        seconds=seconds,
        billable=True,
        hourly_rate=Decimal(rate) if rate else None,
        cost_center="Delivery",
        description="Landing page",
    )


def _rows(folder: Path, month: str) -> list[dict[str, str]]:
    with (folder / file_name(month)).open(encoding="utf-8-sig", newline="") as stream:
        return list(csv.DictReader(stream))


def test_is_a_sink_and_round_trips_create_update_delete(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, clock=lambda: NOW)
    assert isinstance(sink, Sink)
    first = _line("agg:a", date(2026, 11, 3), 5400)
    other = _line("agg:b", date(2026, 10, 31), 1800, rate=None)
    creates = [Op.for_line("create", first), Op.for_line("create", other)]
    by_key = {r.idempotency_key: r for r in sink.push(creates)}  # receipts come in no promised order
    assert [by_key[op.idempotency_key].status for op in creates] == ["ok", "ok"]
    created = [by_key[op.idempotency_key] for op in creates]
    rows = _rows(tmp_path, "2026-11")
    assert len(rows) == 1
    assert rows[0]["hours"] == "1.50" and rows[0]["minutes"] == "90" and rows[0]["amount"] == "120.00"
    assert _rows(tmp_path, "2026-10")[0]["amount"] == ""

    record = created[0].remote_id
    assert record is not None
    changed = _line("agg:a", date(2026, 11, 3), 3600, version=2)
    (updated,) = sink.push([Op.for_line("update", changed, remote_id=record)])
    assert updated.status == "ok" and updated.remote_id == record
    rows = _rows(tmp_path, "2026-11")
    assert len(rows) == 1 and rows[0]["minutes"] == "60" and rows[0]["record"] == record

    holdings = list(sink.holdings(date(2026, 10, 1), date(2026, 11, 30), []))
    assert sorted(h.minutes for h in holdings) == [30, 60]
    assert {h.idempotency_key for h in holdings} == {
        Op.for_line("update", changed, remote_id=record).idempotency_key,
        created[1].idempotency_key,
    }

    gone = _line("agg:a", date(2026, 11, 3), 3600, version=3)
    (deleted,) = sink.push([Op.for_line("delete", gone, remote_id=record)])
    assert deleted.status == "ok"
    assert _rows(tmp_path, "2026-11") == []
    # Deleting again is harmless: the record is already gone.
    (again,) = sink.push([Op.for_line("delete", gone, remote_id=record)])
    assert again.status == "ok"


def test_find_sees_a_write_whose_receipt_was_lost(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, clock=lambda: NOW)
    line = _line("entry:asana:1:9", date(2026, 11, 4), 600)
    op = Op.for_line("create", line)
    assert sink.find(op.idempotency_key, line) is None
    generator = sink.push([op])
    next(generator)  # the file is written before the first receipt is handed out
    found = FileSink(tmp_path).find(op.idempotency_key, line)
    assert found is not None and found.status == "ok" and found.remote_id == op.idempotency_key


def test_update_of_a_missing_record_fails_with_the_record_named(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, clock=lambda: NOW)
    line = _line("agg:z", date(2026, 11, 5), 600, version=2)
    (receipt,) = sink.push([Op.for_line("update", line, remote_id="nope")])
    assert receipt.status == "failed" and receipt.error is not None and "nope" in receipt.error


def test_rewrites_are_byte_stable(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, clock=lambda: NOW)
    ops = [Op.for_line("create", _line(f"agg:{i}", date(2026, 11, 1 + i), 600 * (i + 1))) for i in range(3)]
    list(sink.push(ops))
    before = (tmp_path / file_name("2026-11")).read_bytes()
    list(sink.push([Op.for_line("delete", ops[0].line, remote_id="missing")]))
    assert (tmp_path / file_name("2026-11")).read_bytes() == before


def test_check_names_the_setting_when_the_folder_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="HOURBRIDGE_FILES__FOLDER"):
        FileSink(target).check()


@pytest.fixture
def tight_umask() -> Iterator[None]:
    previous = os.umask(0o077)  # would leave new files to their owner only
    yield
    os.umask(previous)


@pytest.mark.parametrize(("mode", "bom"), [(0o640, True), (0o660, True), (0o600, False)])
def test_files_get_exactly_the_mode_and_the_bom_of_the_settings(
    tmp_path: Path, tight_umask: None, mode: int, bom: bool
) -> None:
    sink = FileSink(tmp_path, output=FileOutput(mode=mode, csv_bom=bom), clock=lambda: NOW)
    list(sink.push([Op.for_line("create", _line("agg:a", date(2026, 11, 3), 600))]))
    path = tmp_path / file_name("2026-11")
    assert stat.S_IMODE(path.stat().st_mode) == mode
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfrecord,key,") if bom else data.startswith(b"record,key,")
    assert len(list(sink.holdings(date(2026, 11, 1), date(2026, 11, 30), []))) == 1


def test_by_default_files_are_0640_with_a_bom_like_the_reports(tmp_path: Path, tight_umask: None) -> None:
    list(FileSink(tmp_path).push([Op.for_line("create", _line("agg:a", date(2026, 11, 3), 600))]))
    path = tmp_path / file_name("2026-11")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.read_bytes().startswith(b"\xef\xbb\xbf")


def test_a_file_written_without_a_bom_by_an_earlier_version_is_read_back_and_kept(tmp_path: Path) -> None:
    line = _line("agg:old", date(2026, 11, 6), 1800)
    op = Op.for_line("create", line)
    old_row = dict.fromkeys(HEADERS, "") | {
        "record": op.idempotency_key,
        "key": f"[hb:{op.idempotency_key}]",
        "date": "2026-11-06",
        "payee": "Ada Lovelace",
        "code": "WEB",
        "minutes": "30",
    }
    text = ",".join(HEADERS) + "\r\n" + ",".join(old_row[h] for h in HEADERS) + "\r\n"
    (tmp_path / file_name("2026-11")).write_bytes(text.encode("utf-8"))  # no byte order mark
    sink = FileSink(tmp_path, clock=lambda: NOW)
    found = sink.find(op.idempotency_key, line)
    assert found is not None and found.remote_id == op.idempotency_key
    assert [h.minutes for h in sink.holdings(date(2026, 11, 1), date(2026, 11, 30), [])] == [30]
    # A new line in the same month keeps the old row; the file is rewritten with the BOM.
    list(sink.push([Op.for_line("create", _line("agg:new", date(2026, 11, 7), 600))]))
    assert (tmp_path / file_name("2026-11")).read_bytes().startswith(b"\xef\xbb\xbfrecord,")
    assert sorted(r["minutes"] for r in _rows(tmp_path, "2026-11")) == ["10", "30"]


def test_text_cells_are_formula_safe_and_the_rows_still_read_back(tmp_path: Path) -> None:
    # A task or client anyone can name "=HYPERLINK(...)" must open as text in a spreadsheet.
    sink = FileSink(tmp_path, clock=lambda: NOW)
    line = replace(
        _line("agg:f", date(2026, 11, 4), 600),
        payee="=cmd|' /C calc'!A0",
        client="+Acme",
        code="-WEB",
        cost_center="@Ops",
        description='=HYPERLINK("http://x")',
    )
    (created,) = sink.push([Op.for_line("create", line)])
    (row,) = _rows(tmp_path, "2026-11")
    assert row["payee"] == "'=cmd|' /C calc'!A0"
    assert (row["client"], row["code"], row["cost_center"]) == ("'+Acme", "'-WEB", "'@Ops")
    assert row["description"] == '\'=HYPERLINK("http://x")'
    assert row["person"] == "ada@example.test"  # ordinary text is left as it is
    # What the sink reads back (its key markers, dates, minutes) is untouched by the apostrophes.
    assert sink.find_many([created.idempotency_key], [line]).keys() == {created.idempotency_key}
    assert [h.minutes for h in sink.holdings(date(2026, 11, 1), date(2026, 11, 30), [])] == [10]
    # Rewriting the month (another line added) does not double the apostrophe.
    list(sink.push([Op.for_line("create", _line("agg:g", date(2026, 11, 5), 60))]))
    assert {r["payee"] for r in _rows(tmp_path, "2026-11")} == {"'=cmd|' /C calc'!A0", "Ada Lovelace"}
