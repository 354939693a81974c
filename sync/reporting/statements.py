"""Build a statement per contractor: their own hours by day and code, nothing about anyone else."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from sync.reporting.model import (
    NOTHING_SHOWN,
    Period,
    ReportLine,
    Shown,
    Tally,
    joined_names,
    redact,
    scrub_line,
    text_key,
    validate_lines,
)

__all__ = [
    "NOT_YET_CODED",
    "Statement",
    "StatementBill",
    "StatementCode",
    "StatementDay",
    "StatementEntry",
    "build_statements",
    "contractor_slug",
    "find_statements",
    "name_key",
    "statement_bills",
]

NOT_YET_CODED = "not yet coded"

_UNSPECIFIED_REASON = "unspecified"
_SLUG_MAX = 64
_SLUG_FALLBACK = "contractor"
_SLUG_WORD_RE = re.compile(r"[a-z0-9]+")
# Device names Windows refuses as file names, whatever the extension (the folder may be a share).
_RESERVED_STEMS = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{n}" for n in range(10)), *(f"lpt{n}" for n in range(10))}
)


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class StatementEntry:
    """One of the contractor's own entries, with what they need to find it on their invoice."""

    work_date: date
    source: str
    task: str
    container: str
    seconds: int
    code: str | None
    code_name: str
    client: str
    description: str
    not_coded_reason: str | None  # the stable reason key while the entry has no code

    @property
    def coded(self) -> bool:
        return self.code is not None


@dataclass(frozen=True, slots=True)
class StatementDay:
    """The contractor's hours on one day under one code (``code`` None: not yet coded)."""

    work_date: date
    code: str | None
    code_name: str
    client: str
    tally: Tally
    shown: Shown = NOTHING_SHOWN  # hours and minutes as displayed: the day rows of a code add up to its row


@dataclass(frozen=True, slots=True)
class StatementCode:
    """The contractor's hours under one code over the whole period."""

    code: str
    code_name: str
    client: str
    tally: Tally
    shown: Shown = NOTHING_SHOWN  # the code rows and the not-yet-coded row add up to the total row


@dataclass(frozen=True, slots=True)
class StatementBill:
    """One of the contractor's bills in accounting, and whether it matches the hours they logged.

    From the period's latest invoice check (``hourbridge invoices check``): the contractor sees the
    same verdict as finance.
    """

    sink: str
    number: str
    bill_date: date
    billed_seconds: int
    logged_seconds: int  # their logged hours under the codes the bill names
    matches: bool
    findings: tuple[str, ...]

    @property
    def verdict(self) -> str:
        return "matches logged hours" if self.matches else "outside tolerance: " + ", ".join(self.findings)


@dataclass(frozen=True, slots=True)
class Statement:
    """One contractor's own hours in one period: by day and code, per code, in total, and entry by entry."""

    contractor: str  # the report's contractor name, email addresses masked
    slug: str  # file stem, unique among the period's statements
    period: Period
    days: tuple[StatementDay, ...]
    codes: tuple[StatementCode, ...]
    coded: Tally
    not_yet_coded: Tally
    total: Tally
    entries: tuple[StatementEntry, ...]
    descriptions: bool  # False: descriptions are dropped and their column is left out
    shown_coded: Shown = NOTHING_SHOWN
    shown_not_yet_coded: Shown = NOTHING_SHOWN
    shown_total: Shown = NOTHING_SHOWN
    bills: tuple[StatementBill, ...] = ()  # their bills, as the period's latest invoice check saw them

    @property
    def report_name(self) -> str:
        """The period report this statement is drawn from."""
        return f"hours-{self.period.label}"

    @property
    def uncoded_entries(self) -> tuple[StatementEntry, ...]:
        return tuple(entry for entry in self.entries if not entry.coded)


# --------------------------------------------------------------------------- model


def name_key(name: str) -> str:
    """A name as people type it: letter case, accents and spacing ignored ("ZOË  müller" -> "zoe muller").

    NFKD splits each accented letter into its base letter and combining marks, which are dropped;
    casefold also maps "ß" to "ss". Letters without a decomposition (ø, ł) stay as they are.
    """
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def find_statements(statements: Sequence[Statement], wanted: str) -> list[Statement]:
    """The statements of the contractor named ``wanted``: exactly (any letter case), else without accents.

    An exact match wins, so "Zoë" never also picks a different contractor written "Zoe".
    """
    exact = [s for s in statements if s.contractor.casefold() == wanted.strip().casefold()]
    if exact:
        return exact
    key = name_key(wanted)
    return [s for s in statements if name_key(s.contractor) == key]


def contractor_slug(name: str) -> str:
    """A filesystem-safe file stem for a contractor: lower-case ASCII words joined by hyphens.

    Email addresses are masked first, so a stem never holds one; a name with no ASCII letters or
    digits (e.g. one written in Chinese) becomes ``contractor``.
    """
    folded = unicodedata.normalize("NFKD", redact(name).casefold()).encode("ascii", "ignore").decode("ascii")
    stem = "-".join(_SLUG_WORD_RE.findall(folded))[:_SLUG_MAX].rstrip("-") or _SLUG_FALLBACK
    return f"{stem}-{_SLUG_FALLBACK}" if stem in _RESERVED_STEMS else stem


def _unique_slugs(names: Sequence[str]) -> list[str]:
    """One stem per name, in order: the first name with a stem keeps it, later ones get ``-2``, ``-3``…"""
    bases = [contractor_slug(name) for name in names]
    slugs: list[str | None] = [None] * len(bases)
    taken: set[str] = set()
    for index, base in enumerate(bases):
        if base not in taken:
            taken.add(base)
            slugs[index] = base
    for index, base in enumerate(bases):
        if slugs[index] is None:
            number = 2
            while f"{base}-{number}" in taken:
                number += 1
            taken.add(f"{base}-{number}")
            slugs[index] = f"{base}-{number}"
    return [slug for slug in slugs if slug is not None]


def _code_texts(lines: Sequence[ReportLine]) -> tuple[str, str]:
    return joined_names(line.code_name for line in lines), joined_names(line.client for line in lines)


def _entry(line: ReportLine, descriptions: bool) -> StatementEntry:
    return StatementEntry(
        work_date=line.work_date,
        source=line.source,
        task=line.task,
        container=line.container,
        seconds=line.seconds,
        code=line.code,
        code_name=line.code_name or "",
        client=line.client or "",
        description=line.description if descriptions else "",
        not_coded_reason=None if line.mapped else (line.unmapped_reason or _UNSPECIFIED_REASON),
    )


def _statement(
    period: Period,
    contractor: str,
    slug: str,
    lines: Sequence[ReportLine],
    descriptions: bool,
    bills: tuple[StatementBill, ...] = (),
) -> Statement:
    by_day: dict[tuple[date, str | None], list[ReportLine]] = {}
    by_code: dict[str, list[ReportLine]] = {}
    for line in lines:
        by_day.setdefault((line.work_date, line.code), []).append(line)
        if line.code is not None:
            by_code.setdefault(line.code, []).append(line)

    days: list[StatementDay] = []
    # Within a day, codes in name order and the not-yet-coded hours last.
    for work_date, code in sorted(by_day, key=lambda k: (k[0], k[1] is None, text_key(k[1] or ""))):
        group = by_day[(work_date, code)]
        code_name, client = _code_texts(group) if code is not None else (NOT_YET_CODED, "")
        days.append(StatementDay(work_date, code, code_name, client, Tally.of(group)))
    codes = tuple(
        StatementCode(code, *_code_texts(by_code[code]), Tally.of(by_code[code]))
        for code in sorted(by_code, key=text_key)
    )

    coded = sum((c.tally for c in codes), Tally())
    not_yet_coded = Tally.of(line for line in lines if not line.mapped)
    total = Tally.of(lines)
    if coded + not_yet_coded != total or sum((d.tally for d in days), Tally()) != total:
        raise RuntimeError(f"statement of {contractor} for {period.label} does not add up")
    # Displayed figures rounded once at the total, then shared down so every level adds up.
    shown_total = Shown.top(total)
    shown_coded, shown_not_yet_coded = shown_total.split([coded, not_yet_coded])
    codes = tuple(
        replace(code, shown=shown)
        for code, shown in zip(codes, shown_coded.split([c.tally for c in codes]), strict=True)
    )
    day_shown: dict[tuple[date, str | None], Shown] = {}
    for code_key, parent in [*((c.code, c.shown) for c in codes), (None, shown_not_yet_coded)]:
        under = [day for day in days if day.code == code_key]
        day_shown.update(
            ((day.work_date, day.code), shown)
            for day, shown in zip(under, parent.split([day.tally for day in under]), strict=True)
        )
    return Statement(
        contractor=contractor,
        slug=slug,
        period=period,
        days=tuple(replace(day, shown=day_shown[(day.work_date, day.code)]) for day in days),
        codes=codes,
        coded=coded,
        not_yet_coded=not_yet_coded,
        total=total,
        entries=tuple(_entry(line, descriptions) for line in lines),
        descriptions=descriptions,
        shown_coded=shown_coded,
        shown_not_yet_coded=shown_not_yet_coded,
        shown_total=shown_total,
        bills=bills,
    )


def build_statements(
    period: Period,
    lines: Iterable[ReportLine],
    *,
    descriptions: bool = True,
    bills: Mapping[str, Sequence[StatementBill]] | None = None,
) -> list[Statement]:
    """One statement per contractor with entries in ``period`` (coded or not), in name order.

    Lines are grouped by the contractor exactly as given, before email addresses are masked, so two
    people whose names mask alike never share a statement. ``bills`` (by contractor, as given) adds
    a line per bill saying whether it matches their logged hours.
    """
    bills = bills or {}
    ordered = sorted(lines, key=lambda line: line.sort_key)
    validate_lines(period, ordered)
    by_contractor: dict[str, list[ReportLine]] = {}
    for line in ordered:
        by_contractor.setdefault(line.contractor, []).append(scrub_line(line))
    # The exact name breaks ties between names that read alike, so stems are assigned the same way every run.
    contractors = sorted(by_contractor, key=lambda name: (text_key(redact(name)), name))
    shown = [redact(name) for name in contractors]
    slugs = _unique_slugs(shown)
    return [
        _statement(period, name, slug, by_contractor[key], descriptions, tuple(bills.get(key, ())))
        for key, name, slug in zip(contractors, shown, slugs, strict=True)
    ]


def statement_bills(results: Iterable[Mapping[str, Any]]) -> dict[str, tuple[StatementBill, ...]]:
    """Each contractor's bills from stored invoice-check results, newest first: a contractor's newest check wins."""
    found: dict[str, tuple[StatementBill, ...]] = {}
    for result in results:
        for row in result.get("contractors") or []:
            name = str(row.get("contractor"))
            if name in found:
                continue
            found[name] = tuple(
                StatementBill(
                    sink=str(b["sink"]),
                    number=str(b["number"]),
                    bill_date=date.fromisoformat(str(b["bill_date"])),
                    billed_seconds=int(b["billed_seconds"]),
                    logged_seconds=int(b["logged_seconds"]),
                    matches=bool(b["matches"]),
                    findings=tuple(str(k) for k in b.get("findings") or ()),
                )
                for b in row.get("bills") or []
            )
    return found
