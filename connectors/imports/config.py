"""How a file is read when the file itself does not say: time zone, date order, decimal mark, encoding, person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel

from connectors.errors import ConfigError

DateOrder = Literal["mdy", "dmy"]
DecimalMark = Literal[",", "."]
FORMATS = ("clockify", "toggl", "harvest", "timesheet")
Format = Literal["auto", "clockify", "toggl", "harvest", "timesheet"]
# The scope (account) every imported entry is filed under: files carry no account of their own.
ACCOUNT = "files"


class ImportConfig(BaseModel):
    """No settings of its own: files arrive by `hourbridge import` or the inbox (HOURBRIDGE_INBOX_DIR),
    read with the HOURBRIDGE_IMPORT_* settings."""

    model_config = {"extra": "forbid"}


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What the file cannot tell by itself; None = detect from the file, or ask when it is ambiguous.

    ``contractor``: the email of the person whose time a file without emails holds (Harvest names
    people only by first and last name); for files with emails, a check that the file holds no one else.
    ``period``: the dates the file is complete for (``--from``/``--to``), instead of its first to last
    row's date, so a day emptied since the last export is emptied in the ledger too.
    """

    contractor: str | None = None
    timezone: ZoneInfo | None = None
    date_order: DateOrder | None = None
    decimal_mark: DecimalMark | None = None
    encoding: str | None = None
    period: tuple[date, date] | None = None

    @classmethod
    def of(
        cls,
        *,
        contractor: str | None = None,
        timezone: str | None = None,
        date_order: str | None = None,
        decimal_mark: str | None = None,
        encoding: str | None = None,
        period: tuple[str, str] | None = None,
    ) -> ImportOptions:
        """Options from their text (command line or settings), each checked with a message naming it."""
        zone = None
        if timezone:
            try:
                zone = ZoneInfo(timezone.strip())
            except (ZoneInfoNotFoundError, ValueError):
                raise ConfigError(
                    f"unknown time zone {timezone!r}: use an IANA name such as Europe/Berlin or America/New_York"
                ) from None
        order: DateOrder | None = None
        if date_order:
            if date_order.lower() not in ("mdy", "dmy"):
                raise ConfigError(f"date order must be mdy (10/15/2024) or dmy (15/10/2024), got {date_order!r}")
            order = "mdy" if date_order.lower() == "mdy" else "dmy"
        mark: DecimalMark | None = None
        if decimal_mark:
            named = {",": ",", "comma": ",", ".": ".", "dot": ".", "point": "."}.get(decimal_mark.strip().lower())
            if named is None:
                raise ConfigError(f"decimal mark must be comma or dot, got {decimal_mark!r}")
            mark = "," if named == "," else "."
        if encoding:
            import codecs

            try:
                codecs.lookup(encoding)
            except LookupError:
                raise ConfigError(f"unknown encoding {encoding!r} (e.g. utf-8, cp1252, latin-1)") from None
        email = contractor.strip().lower() if contractor else None
        if email is not None and ("@" not in email or " " in email):
            raise ConfigError(f"--contractor must be the contractor's email address, got {contractor!r}")
        dates: tuple[date, date] | None = None
        if period is not None:
            try:
                dates = (date.fromisoformat(period[0]), date.fromisoformat(period[1]))
            except ValueError:
                raise ConfigError(
                    f"--from and --to are dates as YYYY-MM-DD, got {period[0]!r} and {period[1]!r}"
                ) from None
            if dates[1] < dates[0]:
                raise ConfigError(f"--to {dates[1]} is before --from {dates[0]}")
        return cls(email, zone, order, mark, encoding or None, dates)
