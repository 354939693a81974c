"""Reconcile one month: minutes per code and person in the sources = in the ledger = in each sink.

The source side of a pulled source (a PM tool, a tracker's API) is the source read again for the
month. An imported file has nothing to read again: its source side is what the last import of each
of its slices recorded (the entry's latest version), so imported time counts and a ledger row that
no longer matches its import is still found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine

from connectors._redact import redact
from connectors.base import Sink, Source
from connectors.delivery import Holding, Line, billable_minutes
from connectors.errors import HourbridgeError
from connectors.imports import SOURCES as IMPORT_FORMATS
from connectors.model import Window
from sync.delivery import periods
from sync.delivery.desired import Catalogs, SinkSpec, desired_lines
from sync.delivery.lines import ADJUSTMENT_PREFIX, line_from_json
from sync.reporting.model import format_minutes
from sync.settings import DeliverySettings
from sync.store import ledger
from sync.store import outbox as store_outbox

UNMAPPED = "(unmapped)"
# Sources whose entries arrive as files (`hourbridge import`, the inbox): nothing to read again.
IMPORTED = frozenset(IMPORT_FORMATS.values())


@dataclass(frozen=True, slots=True)
class Difference:
    """One line that does not agree, and where."""

    where: str  # "ledger" (source vs ledger) or a sink name
    code: str
    person: str
    item: str  # the entry or line it is about
    expected_minutes: str
    actual_minutes: str
    note: str

    def as_dict(self) -> dict[str, str]:
        return {
            "where": self.where,
            "code": self.code,
            "person": self.person,
            "item": self.item,
            "expected_minutes": self.expected_minutes,
            "actual_minutes": self.actual_minutes,
            "note": self.note,
        }


@dataclass(slots=True)
class Row:
    """Totals of one code and person."""

    code: str
    person: str
    source_seconds: int | None = None
    ledger_seconds: int = 0
    held_seconds: int = 0
    sink_expected: dict[str, int] = field(default_factory=dict)  # minutes the sink should hold
    sink_holds: dict[str, int] = field(default_factory=dict)  # minutes it does hold

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "person": self.person,
            "source_seconds": self.source_seconds,
            "ledger_seconds": self.ledger_seconds,
            "held_seconds": self.held_seconds,
            "sinks": {
                name: {"expected_minutes": self.sink_expected.get(name, 0), "minutes": self.sink_holds.get(name, 0)}
                for name in sorted(set(self.sink_expected) | set(self.sink_holds))
            },
        }


@dataclass(slots=True)
class Reconciliation:
    period: str
    closed: bool
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # explained gaps: held time, adjustments elsewhere
    sinks: list[str] = field(default_factory=list)
    sources_checked: bool = False  # a pulled source was read again
    imports_checked: bool = False  # imported entries were compared with what their imports recorded

    def row(self, code: str | None, person: str) -> Row:
        key = (code or UNMAPPED, person)
        found = self.rows.get(key)
        if found is None:
            found = self.rows[key] = Row(key[0], person)
        return found

    @property
    def ok(self) -> bool:
        return not self.differences

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "closed": self.closed,
            "ok": self.ok,
            "sources_checked": self.sources_checked,
            "imports_checked": self.imports_checked,
            "sinks": self.sinks,
            "rows": [self.rows[k].as_dict() for k in sorted(self.rows)],
            "differences": [d.as_dict() for d in self.differences],
            "notes": self.notes,
        }


def reconcile(
    engine: Engine,
    label: str,
    *,
    sources: Mapping[str, Source],
    sinks: Mapping[str, Sink],
    specs: Mapping[str, SinkSpec],
    catalogs: Catalogs,
    gates: DeliverySettings,
    as_of: datetime,
) -> Reconciliation:
    """Compare the month ``label`` across the sources, the ledger and every sink, line by line.

    ``sources``: the pulled sources to read again (may be empty); imported files are compared with
    what their imports recorded whatever it holds.
    """
    label = periods.parse_month(label)
    start, end = periods.month_bounds(label)
    with engine.connect() as conn:
        closed = periods.closed(conn)
        ledger_rows = list(ledger.live_entries_between(conn, start, end))
        recorded_rows = list(ledger.recorded_entries_between(conn, IMPORTED, start, end))
    result = Reconciliation(label, closed.is_closed(label), sinks=sorted(sinks))
    by_entry: dict[tuple[str, str, str], Any] = {}
    for row in ledger_rows:
        by_entry[(row.source, row.account, row.external_id)] = row
        person = row.contractor or row.person_name
        result.row(row.code, person).ledger_seconds += row.duration_seconds
    # An import source built from settings lists nothing to pull: reading it again would call
    # every imported entry gone.
    pulled = {name: source for name, source in sources.items() if name not in IMPORTED}
    read = _compare_sources(result, pulled, by_entry, Window(start, end))
    if recorded_rows:
        _compare_imports(result, recorded_rows, start, end)
        read |= IMPORTED
    _settle_source_side(result, ledger_rows, read)
    for name, sink in sinks.items():
        spec = specs.get(name) or SinkSpec(name, "day")
        _compare_sink(engine, result, name, sink, spec, catalogs, gates, as_of)
    return result


def _compare_sources(
    result: Reconciliation,
    sources: Mapping[str, Source],
    by_entry: Mapping[tuple[str, str, str], Any],
    window: Window,
) -> set[str]:
    """The pulled sources read again, entry by entry against the ledger; returns the ones read."""
    # Longer than most: a source's entries stream through once (a full re-read of a PM tool is slow
    # and rate-limited), so matching against the ledger and noting differences happen in one loop.
    if not sources:
        result.notes.append("sources not read again (no source to pull configured, or --no-sources)")
        return set()
    seen: set[tuple[str, str, str]] = set()
    checked: set[str] = set()
    for name, source in sources.items():
        try:
            source.check()
            for scope in source.scopes():
                for entry in source.fetch(scope, window):
                    key = (entry.source, entry.account, entry.external_id)
                    seen.add(key)
                    stored = by_entry.get(key)
                    if stored is None:
                        person = entry.person.name or entry.person.id
                        result.row(None, person).source_seconds = (
                            result.row(None, person).source_seconds or 0
                        ) + entry.duration_seconds
                        result.differences.append(
                            Difference(
                                "ledger",
                                UNMAPPED,
                                person,
                                f"{entry.source}:{entry.external_id}",
                                format_minutes(entry.duration_seconds),
                                "0.00",
                                "in the PM tool, not in the ledger: run `hourbridge sync`",
                            )
                        )
                        continue
                    row = result.row(stored.code, stored.contractor or stored.person_name)
                    row.source_seconds = (row.source_seconds or 0) + entry.duration_seconds
                    if entry.duration_seconds != stored.duration_seconds:
                        result.differences.append(
                            Difference(
                                "ledger",
                                stored.code or UNMAPPED,
                                stored.contractor or stored.person_name,
                                f"{entry.source}:{entry.external_id}",
                                format_minutes(entry.duration_seconds),
                                format_minutes(stored.duration_seconds),
                                "edited in the PM tool since the last sync: run `hourbridge sync`",
                            )
                        )
            checked.add(name)
        except HourbridgeError as exc:
            result.differences.append(
                Difference(name, "", "", "", "", "", f"could not read the PM tool: {redact(exc.message)}")
            )
    result.sources_checked = bool(checked)
    for key, stored in by_entry.items():
        if key[0] in checked and key not in seen:
            row = result.row(stored.code, stored.contractor or stored.person_name)
            row.source_seconds = row.source_seconds or 0
            result.differences.append(
                Difference(
                    "ledger",
                    stored.code or UNMAPPED,
                    stored.contractor or stored.person_name,
                    f"{key[0]}:{key[2]}",
                    "0.00",
                    format_minutes(stored.duration_seconds),
                    "gone from the PM tool: the next `hourbridge sync` removes it",
                )
            )
    return checked


def _compare_imports(result: Reconciliation, recorded: Iterable[Any], start: date, end: date) -> None:
    """Imported entries: the ledger against what the last import of their slice recorded."""
    result.imports_checked = True
    result.notes.append("imported files: their source side is what their last import recorded")
    for entry in recorded:
        live = entry.deleted_at is None and start <= entry.work_date <= end
        held = (
            entry.recorded_change is not None
            and entry.recorded_change != "deleted"
            and start <= entry.recorded_date <= end
        )
        person = entry.contractor or entry.person_name
        row = result.row(entry.code, person)
        if held:
            row.source_seconds = (row.source_seconds or 0) + entry.recorded_seconds
        expected = entry.recorded_seconds if held else 0
        actual = entry.duration_seconds if live else 0
        if live and entry.recorded_change is None:
            note = "in the ledger, but no import recorded this version of it: it was written outside hourbridge"
        elif live and not held:
            note = "in the ledger, but not in the last import of its slice: it was changed outside hourbridge"
        elif held and not live:
            note = "in the last import of its slice, not live in the ledger: import the file again"
        elif live and (expected != actual or entry.work_date != entry.recorded_date):
            note = (
                f"the ledger holds {format_minutes(actual)} min on {entry.work_date}, its import recorded "
                f"{format_minutes(expected)} min on {entry.recorded_date}: the row was changed outside hourbridge"
            )
        else:
            continue
        result.differences.append(
            Difference(
                "ledger",
                entry.code or UNMAPPED,
                person,
                f"{entry.source}:{entry.external_id}",
                format_minutes(expected),
                format_minutes(actual),
                note,
            )
        )


def _settle_source_side(result: Reconciliation, ledger_rows: Iterable[Any], read: set[str]) -> None:
    """Rows whose every entry's source was read show 0 when it holds nothing; the others stay unknown."""
    if not read:
        return
    unread = {
        (row.code or UNMAPPED, row.contractor or row.person_name) for row in ledger_rows if row.source not in read
    }
    for key, row in result.rows.items():
        if key in unread:
            row.source_seconds = None
        elif row.source_seconds is None:
            row.source_seconds = 0


def _compare_sink(
    engine: Engine,
    result: Reconciliation,
    name: str,
    sink: Sink,
    spec: SinkSpec,
    catalogs: Catalogs,
    gates: DeliverySettings,
    as_of: datetime,
) -> None:
    label = result.period
    start, end = periods.month_bounds(label)
    with engine.connect() as conn:
        desired = desired_lines(conn, spec, label, catalogs, gates, as_of)
        delivered = store_outbox.delivered_in(conn, name, label)
        owners = store_outbox.op_owners(conn, name, label)
        adjustment_rows = store_outbox.adjustment_rows_into(conn, name, label)
        closed = periods.closed(conn)
    latest_adjustments = {r.line["adjusts"]: r for r in adjustment_rows}
    # A reopened month: adjustments of its lines that sit in a month still closed stay there, and
    # its own lines carry only the rest (see plan_deliveries).
    frozen: dict[str, tuple[int, list[str]]] = {}
    if not result.closed:
        for r in adjustment_rows:
            if closed.is_closed(r.period):
                seconds, months = frozen.get(r.line["adjusts"], (0, []))
                frozen[r.line["adjusts"]] = (seconds + int(r.seconds), [*months, r.period])
    for reason, held in sorted(desired.held.items()):
        if held.entries:
            result.notes.append(f"{name}: {held.entries} entries ({format_minutes(held.seconds)} min) held: {reason}")
    for line in desired.lines.values():
        result.row(line.code, line.person).sink_expected[name] = result.row(line.code, line.person).sink_expected.get(
            name, 0
        ) + billable_minutes(line.seconds)
    try:
        holdings = list(sink.holdings(start, end, [line_from_json(r.line) for r in delivered.values()]))
    except HourbridgeError as exc:
        result.differences.append(Difference(name, "", "", "", "", "", f"could not read: {redact(exc.message)}"))
        return
    held_by_line = _match_holdings(result, name, holdings, owners, delivered)
    _compare_delivered(result, name, delivered, held_by_line)
    _compare_desired(result, name, desired.lines, delivered, latest_adjustments, frozen)


def _match_holdings(
    result: Reconciliation,
    name: str,
    holdings: Iterable[Holding],
    owners: Mapping[str, Any],
    delivered: Mapping[str, Any],
) -> dict[str, Holding]:
    """The sink's records by the delivered line they hold; any other record is a difference."""
    held_by_line: dict[str, Holding] = {}
    for holding in holdings:
        owner = owners.get(holding.idempotency_key)
        current = delivered.get(owner.line_key) if owner is not None else None
        if owner is None or current is None or current.version != owner.version:
            result.differences.append(
                Difference(
                    name,
                    "",
                    "",
                    f"record {holding.remote_id} ({holding.work_date})",
                    "0",
                    str(holding.minutes),
                    "in the sink but not a line it should hold (a duplicate or an outdated write)",
                )
            )
            continue
        if owner.line_key in held_by_line:
            result.differences.append(
                Difference(name, "", "", f"record {holding.remote_id}", "0", str(holding.minutes), "duplicate record")
            )
            continue
        held_by_line[owner.line_key] = holding
    return held_by_line


def _compare_delivered(
    result: Reconciliation, name: str, delivered: Mapping[str, Any], held_by_line: Mapping[str, Holding]
) -> None:
    """What was delivered against what the sink holds."""
    for key, stored in delivered.items():
        line = line_from_json(stored.line)
        found = held_by_line.get(key)
        got = found.minutes if found is not None else 0
        target = result.row(line.code, line.person)
        target.sink_holds[name] = target.sink_holds.get(name, 0) + got
        if key.startswith(ADJUSTMENT_PREFIX):
            target.sink_expected[name] = target.sink_expected.get(name, 0) + line.minutes
            result.notes.append(f"{name}: adjustment {line.description or key} ({line.minutes} min)")
        if found is None:
            result.differences.append(
                Difference(name, line.code, line.person, _item(line), str(line.minutes), "0", "missing in the sink")
            )
        elif found.minutes != line.minutes:
            result.differences.append(
                Difference(
                    name, line.code, line.person, _item(line), str(line.minutes), str(got), "changed in the sink"
                )
            )


def _compare_desired(
    result: Reconciliation,
    name: str,
    desired: Mapping[str, Line],
    delivered: Mapping[str, Any],
    latest_adjustments: Mapping[str, Any],
    frozen: Mapping[str, tuple[int, list[str]]],
) -> None:
    """What the ledger says the sink should hold, against what was delivered.

    ``frozen``: for a reopened month, the seconds that adjustments in months still closed carry for
    its lines, and those months.
    """
    for key, line in desired.items():
        record = delivered.get(key)
        have = int(record.seconds) if record is not None else 0
        carried, months = frozen.get(key, (0, []))
        if carried and have == line.seconds - carried:
            result.notes.append(
                f"{name}: {line.code} {line.person} {_item(line)}: {billable_minutes(carried)} min of it "
                f"adjusted in {', '.join(months)} (closed)"
            )
            continue
        if carried and have == 0 and line.seconds < carried:
            result.differences.append(
                Difference(
                    name,
                    line.code,
                    line.person,
                    _item(line),
                    str(line.minutes),
                    str(billable_minutes(carried)),
                    f"credit needed: adjusted in {', '.join(months)} (closed) beyond the time now logged",
                )
            )
            continue
        if have == line.seconds:
            continue
        if result.closed:
            adjustment = latest_adjustments.get(key)
            if adjustment is not None:
                result.notes.append(
                    f"{name}: {line.code} {line.person} {_item(line)} changed after closing; "
                    f"adjusted in {adjustment.period}"
                )
                continue
            note = "changed after the month closed; the adjustment follows in the next open month's delivery"
        else:
            note = "not delivered yet (see `hourbridge status`; the next run sends it)"
        result.differences.append(
            Difference(name, line.code, line.person, _item(line), str(line.minutes), str(billable_minutes(have)), note)
        )
    for key, stored in delivered.items():
        if key.startswith(ADJUSTMENT_PREFIX) or key in desired:
            continue
        line = line_from_json(stored.line)
        note = "credit needed: time went down after the month closed" if result.closed else "not removed yet"
        result.differences.append(Difference(name, line.code, line.person, _item(line), "0", str(line.minutes), note))
    for key, (carried, months) in frozen.items():
        if key in desired or key in delivered:
            continue
        model = line_from_json(latest_adjustments[key].line)
        result.differences.append(
            Difference(
                name,
                model.code,
                model.person,
                f"adjustment in {', '.join(months)}",
                "0",
                str(billable_minutes(carried)),
                "credit needed: adjusted while closed, no longer logged",
            )
        )


def _item(line: Any) -> str:
    if line.line_key.startswith("entry:"):
        return f"{line.work_date} entry {line.line_key.rsplit(':', 1)[-1]}"
    return f"{line.work_date} {line.line_key.split(':', 1)[0]} line"
