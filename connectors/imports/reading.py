"""Read an export into a header and rows of text cells, each row with the line a person sees it on.

CSV: the encoding from its byte-order mark, else UTF-8 when the bytes are valid UTF-8, else an error
asking for ``--encoding``; the delimiter (comma, semicolon or tab) from the header line. XLSX: the
first sheet; typed cells become the text a CSV export would carry in ISO form (dates ``2024-10-15``,
times ``14:05:00``, numbers with a dot).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from connectors.imports.problems import Problem, column_letter

XLSX_MAGIC = b"PK\x03\x04"
BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


@dataclass(frozen=True, slots=True)
class Table:
    """One file's header and non-blank rows; ``rows`` are (line, cells) with cells as long as the header."""

    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str, ...]], ...]
    problems: tuple[Problem, ...] = ()

    def index(self, *names: str) -> int | None:
        """The position of the first of ``names`` present in the header (letter case ignored)."""
        lowered = [h.casefold() for h in self.header]
        for name in names:
            if name.casefold() in lowered:
                return lowered.index(name.casefold())
        return None

    def column(self, index: int) -> str:
        """A column as messages name it: its header and spreadsheet letter."""
        return f"{self.header[index]!r} ({column_letter(index)})"


class UnreadableFile(Exception):
    """The file cannot be read at all (not CSV/XLSX, wrong encoding); the message says what to do."""


def read_table(path: Path, *, encoding: str | None = None) -> Table:
    data = path.read_bytes()
    if data.startswith(XLSX_MAGIC) or path.suffix.lower() in (".xlsx", ".xlsm"):
        return _xlsx(path.name, data)
    return read_csv_text(path.name, decode(data, encoding))


def decode(data: bytes, encoding: str | None) -> str:
    """The file's text: the given encoding, its byte-order mark's, or UTF-8 when valid; else ask."""
    if encoding is not None:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            raise UnreadableFile(f"not readable as {encoding}: {exc.reason} at byte {exc.start}") from None
        return text.removeprefix("\ufeff")
    for bom, name in BOMS:
        if data.startswith(bom):
            try:
                return data.decode(name).removeprefix("\ufeff")
            except UnicodeDecodeError as exc:
                raise UnreadableFile(f"starts with a {name} byte-order mark but is not {name} ({exc.reason})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UnreadableFile(
            f"line {line} is not UTF-8 and the file does not say its encoding: save it as UTF-8, or pass "
            "--encoding (e.g. cp1252 for Excel on Windows, latin-1)"
        ) from None


def read_csv_text(name: str, text: str) -> Table:
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=lambda d: len(next(csv.reader([first_line], delimiter=d), [])))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, tuple[str, ...]]] = []
    problems: list[Problem] = []
    header: tuple[str, ...] = ()
    last = 0
    try:
        for record in reader:
            line = last + 1
            last = reader.line_num
            if not header:
                if not any(cell.strip() for cell in record):
                    continue
                header = tuple(cell.strip().removeprefix("\ufeff").strip() for cell in record)
                header_line = line
                continue
            if not any(cell.strip() for cell in record):
                continue
            rows.append((line, tuple(record)))
    except csv.Error as exc:
        problems.append(Problem(last + 1, "", f"not valid CSV ({exc}): check the quotes on this line"))
    if not header:
        raise UnreadableFile("the file is empty: it has no header line")
    return _checked(name, header, rows, problems, header_line)


def _xlsx(name: str, data: bytes) -> Table:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged or foreign file
        raise UnreadableFile(
            f"not a readable XLSX workbook ({type(exc).__name__}): export it again as CSV or XLSX"
        ) from None
    try:
        sheet = book.worksheets[0]
        header: tuple[str, ...] = ()
        header_line = 1
        rows: list[tuple[int, tuple[str, ...]]] = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = tuple(_cell_text(v) for v in values)
            if not any(c.strip() for c in cells):
                continue
            if not header:
                header = tuple(c.strip().removeprefix("\ufeff").strip() for c in cells)
                while header and not header[-1]:
                    header = header[:-1]
                header_line = number
                continue
            rows.append((number, cells))
    finally:
        book.close()
    if not header:
        raise UnreadableFile("the first sheet is empty: it has no header row")
    width = len(header)
    # Spreadsheets pad rows with empty cells past the last column; only text beyond the header counts.
    trimmed = [
        (n, c[:width] + ("",) * (width - len(c))) if not any(x.strip() for x in c[width:]) else (n, c) for n, c in rows
    ]
    return _checked(name, header, trimmed, [], header_line)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, timedelta):
        seconds = round(value.total_seconds())
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if isinstance(value, float):
        return str(Decimal(repr(value)))
    return str(value)


def _checked(
    name: str,
    header: tuple[str, ...],
    rows: list[tuple[int, tuple[str, ...]]],
    problems: list[Problem],
    header_line: int,
) -> Table:
    seen: dict[str, int] = {}
    for index, title in enumerate(header):
        if not title:
            problems.append(Problem(header_line, column_letter(index), "the header cell is empty: name the column"))
        elif title.casefold() in seen:
            problems.append(
                Problem(header_line, f"{title!r} ({column_letter(index)})", "this column name appears twice")
            )
        seen.setdefault(title.casefold(), index)
    kept: list[tuple[int, tuple[str, ...]]] = []
    for line, cells in rows:
        if len(cells) != len(header):
            problems.append(
                Problem(
                    line,
                    "",
                    f"has {len(cells)} cells but the header has {len(header)}: a missing or extra separator or quote",
                )
            )
            continue
        kept.append((line, cells))
    return Table(name, header, tuple(kept), tuple(problems))
