"""FileSink: an accounting sink that holds its lines in one CSV file per month, for books kept from files."""

from __future__ import annotations

import codecs
import csv
import io
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

from connectors._files import csv_text, write_files
from connectors.base import FileOutput
from connectors.delivery import Holding, Line, Op, OpKind, Receipt, hours_from_minutes, marked_keys, marker
from connectors.errors import ConfigError

HEADERS = (
    "record",
    "key",
    "date",
    "payee",
    "person",
    "code",
    "client",
    "cost_center",
    "hours",
    "minutes",
    "billable",
    "hourly_rate",
    "amount",
    "currency",
    "description",
)

Row = dict[str, str]

# The settings' defaults (0640, with a BOM): what the sink writes when built without the settings.
DEFAULT_OUTPUT = FileOutput()


def file_name(month: str) -> str:
    return f"accounting-{month}.csv"


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def line_row(record: str, key: str, line: Line) -> Row:
    """The CSV row of ``line`` as the record ``record`` written by the op keyed ``key``.

    Text cells are written formula-safe (``csv_text``), as in the reports: the files are opened in
    spreadsheets. The sink reads back only its own columns (record, key, date, minutes), so the
    apostrophe never changes what it finds.
    """
    minutes = line.minutes
    hours = hours_from_minutes(minutes, places=2)
    amount = (hours_from_minutes(minutes) * line.hourly_rate).quantize(Decimal("0.01")) if line.hourly_rate else None
    return {
        "record": record,
        "key": marker(key),
        "date": line.work_date.isoformat(),
        "payee": csv_text(line.payee),
        "person": csv_text(line.person),
        "code": csv_text(line.code),
        "client": csv_text(line.client),
        "cost_center": csv_text(line.cost_center or ""),
        "hours": str(hours),
        "minutes": str(minutes),
        "billable": "true" if line.billable else "false",
        "hourly_rate": "" if line.hourly_rate is None else str(line.hourly_rate),
        "amount": "" if amount is None else str(amount),
        "currency": line.currency,
        "description": csv_text(line.description or ""),
    }


class FileSink:
    """Holds delivered lines as rows of ``accounting-YYYY-MM.csv`` in one folder (UTF-8, RFC 4180).

    The files are written as the reports are (``output``): exactly HOURBRIDGE_FILE_MODE, and with a
    UTF-8 byte order mark unless HOURBRIDGE_CSV_BOM is off. They are read with or without one, since
    earlier versions wrote none and a changed setting leaves untouched months as they were.

    The row's ``record`` column is its remote id (the key of the op that created it) and ``key`` its
    ``[hb:<key>]`` marker, so the folder is read back like any other sink's records: a re-run, a
    crash between write and receipt, or a new ledger finds what is already there. Every month file is
    replaced atomically; only one deliverer per sink runs at a time (the outbox's lock).
    """

    name: ClassVar[str] = "files"

    def __init__(
        self,
        folder: Path,
        *,
        output: FileOutput = DEFAULT_OUTPUT,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.folder = Path(folder)
        self.output = output
        self._clock = clock
        self._writes = 0

    def check(self) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise ConfigError(f"HOURBRIDGE_FILES__FOLDER {self.folder} is a file, not a folder; point it at a folder")

    def _read(self, month: str) -> dict[str, Row]:
        path = self.folder / file_name(month)
        if not path.is_file():
            return {}
        # utf-8-sig drops a leading byte order mark and reads a file without one as plain UTF-8.
        with path.open(encoding="utf-8-sig", newline="") as stream:
            return {row["record"]: row for row in csv.DictReader(stream)}

    def _render(self, rows: dict[str, Row]) -> bytes:
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=HEADERS, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(sorted(rows.values(), key=lambda r: (r["date"], r["payee"], r["code"], r["record"])))
        return (codecs.BOM_UTF8 if self.output.csv_bom else b"") + buffer.getvalue().encode("utf-8")

    def push(self, ops: Sequence[Op]) -> Iterator[Receipt]:
        by_month: dict[str, list[Op]] = defaultdict(list)
        for op in ops:
            by_month[_month(op.line.work_date)].append(op)
        for month, month_ops in sorted(by_month.items()):
            rows = self._read(month)
            receipts = [self._apply(rows, op) for op in month_ops]
            write_files(self.folder, [(file_name(month), self._render(rows))], mode=self.output.mode)
            self._writes += 1
            yield from receipts

    def _apply(self, rows: dict[str, Row], op: Op) -> Receipt:
        at = self._clock().astimezone(UTC)
        if op.kind == "create":
            record = op.idempotency_key
            rows[record] = line_row(record, op.idempotency_key, op.line)
            return Receipt(op.idempotency_key, op.kind, "ok", record, None, at)
        record = str(op.remote_id)
        if record not in rows:
            if op.kind == "delete":  # already gone: the delete's goal holds
                return Receipt(op.idempotency_key, op.kind, "ok", record, None, at)
            return Receipt(op.idempotency_key, op.kind, "failed", record, None, at, error=f"record {record} not found")
        if op.kind == "delete":
            del rows[record]
        else:
            rows[record] = line_row(record, op.idempotency_key, op.line)
        return Receipt(op.idempotency_key, op.kind, "ok", record, None, at)

    def find(self, idempotency_key: str, line: Line, kind: OpKind = "create") -> Receipt | None:
        for row in self._read(_month(line.work_date)).values():
            if idempotency_key in marked_keys(row["key"]):
                return Receipt(idempotency_key, kind, "ok", row["record"], None, self._clock().astimezone(UTC))
        return None

    def find_many(self, keys: Sequence[str], lines: Sequence[Line]) -> dict[str, Receipt]:
        """The rows carrying any of ``keys``: each month file the lines fall in, read once."""
        wanted = set(keys)
        found: dict[str, Receipt] = {}
        for month in sorted({_month(line.work_date) for line in lines}):
            for row in self._read(month).values():
                for key in marked_keys(row["key"]):
                    if key in wanted and key not in found:
                        found[key] = Receipt(key, "create", "ok", row["record"], None, self._clock().astimezone(UTC))
        return found

    def holdings(self, start: date, end: date, lines: Sequence[Line]) -> Iterator[Holding]:
        month = date(start.year, start.month, 1)
        while month <= end:
            for row in self._read(_month(month)).values():
                day = date.fromisoformat(row["date"])
                keys = marked_keys(row["key"])
                if keys and start <= day <= end:
                    yield Holding(keys[0], row["record"], day, int(row["minutes"]))
            month = date(month.year + month.month // 12, month.month % 12 + 1, 1)

    def stats(self) -> dict[str, int]:
        return {"file_writes": self._writes}

    def close(self) -> None:
        """Nothing to release: every write opens and closes its own files."""
