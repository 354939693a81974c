"""Cell parsers: dates in any one order, 12- and 24-hour clock times, durations, locale decimals, flags.

Every parser raises ``ValueError`` with a message that says what was expected; the format modules turn
it into a ``Problem`` naming the line and column. Detection (date order, decimal mark) looks at every
cell of the file and decides only when some cell makes the answer certain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from connectors.imports.config import DateOrder, DecimalMark

_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]00:00(?::00)?)?$")
_NUMERIC_DATE = re.compile(r"^(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp]\.?[Mm]\.?)?$")
_DURATION = re.compile(r"^(\d+):([0-5]\d)(?::([0-5]\d))?$")
_GROUPED = re.compile(r"^\d{1,3}([.,]\d{3})+$")


class AmbiguousDates(ValueError):
    """Every date of the file reads both ways (e.g. 04/05/2024): the date order must be given."""


def date_order_of(texts: Iterable[str]) -> DateOrder | None:
    """``mdy`` or ``dmy`` when some date of the file decides it; None when none needs it (ISO dates).

    Raises ``AmbiguousDates`` when numeric dates all read both ways and ``ValueError`` when some read
    only month-first and others only day-first.
    """
    first_big = second_big = numeric = False
    for text in texts:
        match = _NUMERIC_DATE.match(text.strip())
        if match is None:
            continue
        numeric = True
        first_big |= int(match.group(1)) > 12
        second_big |= int(match.group(3)) > 12
    if first_big and second_big:
        raise ValueError("the dates mix day-first (29/04/2025) and month-first (04/29/2025): export them in one order")
    if first_big:
        return "dmy"
    if second_big:
        return "mdy"
    if numeric:
        raise AmbiguousDates(
            "every date reads both as month/day and day/month (e.g. 04/05/2024): pass --date-order mdy or "
            "--date-order dmy (HOURBRIDGE_IMPORT_DATE_ORDER in the inbox)"
        )
    return None


def parse_date(text: str, order: DateOrder | None) -> date:
    value = text.strip()
    iso = _ISO_DATE.match(value)
    if iso is not None:
        return _date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)), value)
    numeric = _NUMERIC_DATE.match(value)
    if numeric is None:
        raise ValueError(f"{value!r} is not a date (expected e.g. 2024-10-15, 10/15/2024 or 15/10/2024)")
    a, b, year = int(numeric.group(1)), int(numeric.group(3)), int(numeric.group(4))
    if order is None:  # detection found no numeric date, so this cannot happen for a checked file
        raise AmbiguousDates(f"{value!r}: pass --date-order mdy or dmy")
    month, day = (a, b) if order == "mdy" else (b, a)
    return _date(year, month, day, value)


def _date(year: int, month: int, day: int, text: str) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(f"{text!r} is not a real date") from None


def parse_clock(text: str) -> time:
    """``14:05``, ``14:05:33``, ``2:05 PM``, ``02:05:33 pm``; ISO date-times from spreadsheets too."""
    value = text.strip()
    if "T" in value or (" " in value and "-" in value):  # a spreadsheet date-time cell
        try:
            return datetime.fromisoformat(value).time()
        except ValueError:
            pass
    match = _CLOCK.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a time of day (expected e.g. 14:05, 14:05:33 or 2:05 PM)")
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    meridiem = (match.group(4) or "").replace(".", "").lower()
    if meridiem:
        if not 1 <= hour <= 12:
            raise ValueError(f"{value!r}: a 12-hour time has hours 1 to 12")
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"{value!r} is not a time of day")
    return time(hour, minute, second)


def local_instant(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time; a time that does not exist (a DST gap) is an error."""
    from datetime import UTC

    local = datetime.combine(day, clock, tzinfo=zone)
    back = local.astimezone(UTC).astimezone(zone)
    if back.replace(tzinfo=None) != local.replace(tzinfo=None):
        raise ValueError(f"{day} {clock} does not exist in {zone.key} (the clocks jumped forward)")
    return local.astimezone(UTC)


def decimal_mark_of(texts: Iterable[str]) -> DecimalMark | None:
    """``,`` or ``.`` when some number of the file decides it; None when no number has a fraction.

    ``2.000,0`` and ``1,5`` say comma; ``2,000.0`` and ``1.5`` say dot; ``1,000`` alone could be
    either. Raises ``ValueError`` when the numbers disagree or none decides but some need it.
    """
    comma = dot = ambiguous = False
    for text in texts:
        value = text.strip().lstrip("-")
        if not value or not any(ch.isdigit() for ch in value):
            continue
        if "," in value and "." in value:
            comma |= value.rfind(",") > value.rfind(".")
            dot |= value.rfind(".") > value.rfind(",")
        elif "," in value or "." in value:
            if _GROUPED.match(value) and value.count(value[-4]) == 1:
                ambiguous = True
            elif "," in value:
                comma = True
            else:
                dot = True
    if comma and dot:
        raise ValueError("the numbers mix decimal commas (1,5) and decimal points (1.5): export them in one format")
    if comma:
        return ","
    if dot:
        return "."
    if ambiguous:
        raise ValueError(
            "numbers such as 1,000 or 1.000 read two ways: pass --decimal comma or --decimal dot "
            "(HOURBRIDGE_IMPORT_DECIMAL_MARK in the inbox)"
        )
    return None


def parse_decimal(text: str, mark: DecimalMark | None) -> Decimal:
    value = text.strip().replace("\u00a0", "").replace(" ", "")
    if mark == ",":
        value = value.replace(".", "").replace(",", ".")
    elif mark == ".":
        value = value.replace(",", "")
    elif "," in value:
        raise ValueError(f"{text.strip()!r}: pass --decimal comma or dot")
    if not re.fullmatch(r"-?\d+(\.\d+)?|-?\.\d+", value):
        raise ValueError(f"{text.strip()!r} is not a number")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{text.strip()!r} is not a number") from None


def hours_seconds(hours: Decimal) -> int:
    """Exact seconds of decimal hours (0.01 h = 36 s), rounded half-even only below one second."""
    return int((hours * 3600).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def parse_clock_duration(text: str) -> int:
    """``01:00:01`` or ``7:30`` (hours may pass 24) as seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text.strip()!r} is not a duration (expected h:mm or h:mm:ss, e.g. 1:30 or 01:30:00)")
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60 + int(match.group(3) or 0)


def parse_duration(text: str, mark: DecimalMark | None) -> int:
    """A duration cell as seconds: ``h:mm(:ss)``, or decimal hours (``0.50``, ``0,5`` with a comma file)."""
    value = text.strip()
    if ":" in value:
        return parse_clock_duration(value)
    hours = parse_decimal(value, mark)
    if hours < 0:
        raise ValueError(f"{value!r}: a duration cannot be negative")
    return hours_seconds(hours)


_TRUE = {"yes", "y", "true", "1", "billable", "ja", "oui", "si", "sí"}
_FALSE = {"no", "n", "false", "0", "non-billable", "nein", "non"}


def parse_flag(text: str) -> bool | None:
    """``Yes``/``No`` (and true/false, 1/0); empty is None."""
    value = text.strip().lower()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{text.strip()!r} is not yes or no")


def split_tags(text: str) -> tuple[str, ...]:
    """Tags as the trackers join them in one cell: ``Development, Backend``."""
    return tuple(tag.strip() for tag in text.split(",") if tag.strip())
