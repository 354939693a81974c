"""The lines each sink should hold for a month, built from the ledger under the mapping and the delivery gates."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal

from sqlalchemy import Connection, and_, select

from connectors import delivery as d
from connectors.base import registered_sinks, sink_plugin
from connectors.delivery import Line
from mappings.schema import Code, MappingDocument, PersonMapping, normalize_name
from sync.delivery.lines import DEFAULT_CURRENCY, MAX_DESCRIPTION, digest, short_key
from sync.delivery.periods import month_bounds
from sync.settings import DeliverySettings, Granularity
from sync.store.tables import entries

__all__ = ["Catalogs", "Held", "HoldReason", "MonthDesired", "SinkSpec", "desired_lines", "gate_hold", "rate_on"]

HoldReason = Literal["unmapped", "awaiting approval", "not settled"]


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """How the planner builds one sink's lines."""

    sink: str
    granularity: Granularity
    tracking_categories: tuple[str, ...] = ()
    drop_descriptions: bool = False

    # The ``people`` key naming the payee this sink books time to; None here means "as the sink
    # registered it", and a sink registered without one books time to the contractor's name.
    payee_field: str | None = None

    def __post_init__(self) -> None:
        if self.payee_field is None and self.sink in registered_sinks():
            object.__setattr__(self, "payee_field", sink_plugin(self.sink).payee_field)


@dataclass(slots=True)
class Held:
    entries: int = 0
    seconds: int = 0


@dataclass(slots=True)
class MonthDesired:
    """The lines ``sink`` should hold for one month, and what was held back from them."""

    label: str
    lines: dict[str, Line] = field(default_factory=dict)
    held: dict[str, Held] = field(default_factory=lambda: defaultdict(Held))
    # line key -> the entry keys ("source:account:external_id") whose time it carries
    members: dict[str, list[str]] = field(default_factory=dict)


class Catalogs:
    """The codes and people of the revision that mapped an entry (a closed month keeps its revision)."""

    def __init__(self, current: MappingDocument, current_revision: int | None, load: Callable[[int], MappingDocument]):
        self._docs: dict[int | None, MappingDocument] = {current_revision: current, None: current}
        self._load = load
        self._people: dict[int | None, dict[str, PersonMapping]] = {}

    def document(self, revision: int | None) -> MappingDocument:
        doc = self._docs.get(revision)
        if doc is None:
            assert revision is not None
            doc = self._docs[revision] = self._load(revision)
        return doc

    def code(self, revision: int | None, code: str) -> Code | None:
        found = self.document(revision).codes.get(code)
        if found is None and revision is not None:
            found = self._docs[None].codes.get(code)
        return found

    def person(self, revision: int | None, contractor: str) -> PersonMapping | None:
        people = self._people.get(revision)
        if people is None:
            people = self._people[revision] = {normalize_name(p.contractor): p for p in self.document(revision).people}
        return people.get(normalize_name(contractor))


def rate_on(code: Code | None, day: date) -> tuple[Decimal | None, str]:
    if code is None:
        return None, DEFAULT_CURRENCY
    for rate in code.rates:
        if rate.effective_from <= day and (rate.effective_to is None or day <= rate.effective_to):
            return rate.rate, rate.currency
    return None, code.rates[0].currency if code.rates else DEFAULT_CURRENCY


def _refs(spec: SinkSpec, code: Code | None) -> dict[str, str]:
    refs: dict[str, str] = {}
    if code is None:
        return refs
    if spec.sink == "quickbooks" and code.quickbooks is not None:
        qb = code.quickbooks
        for key, value in (
            (d.REF_QB_CUSTOMER, qb.customer),
            (d.REF_QB_ITEM, qb.item),
            (d.REF_QB_CLASS, qb.class_),
            (d.REF_QB_DEPARTMENT, qb.department),
        ):
            if value:
                refs[key] = value
    if spec.sink == "xero" and code.xero is not None:
        xero = code.xero
        for key, value in (
            (d.REF_XERO_ACCOUNT, xero.account),
            (d.REF_XERO_TAX_TYPE, xero.tax_type),
            (d.REF_XERO_PROJECT, xero.project),
            (d.REF_XERO_TASK, xero.task),
        ):
            if value:
                refs[key] = value
        options = {normalize_name(k): v for k, v in xero.tracking.items()}
        for index, category in enumerate(spec.tracking_categories[:2]):
            option = options.get(normalize_name(category))
            if option:
                refs[d.REF_XERO_TRACKING_1 if index == 0 else d.REF_XERO_TRACKING_2] = option
    return refs


def gate_hold(
    gate: str, approval_status: str | None, work_date: date, settle_hours: int, as_of: datetime
) -> HoldReason | None:
    """Why an entry may not be delivered yet under its source's gate, or None when it may."""
    if gate == "approved":
        return None if (approval_status or "").upper() == "APPROVED" else "awaiting approval"
    if gate == "settled":
        day_over = datetime.combine(work_date + timedelta(days=1), time.min, tzinfo=UTC)
        return None if day_over + timedelta(hours=settle_hours) <= as_of else "not settled"
    return None


_ENTRY_COLUMNS = (
    entries.c.source,
    entries.c.account,
    entries.c.external_id,
    entries.c.work_date,
    entries.c.duration_seconds,
    entries.c.person_name,
    entries.c.payload,
    entries.c.code,
    entries.c.contractor,
    entries.c.client,
    entries.c.cost_center,
    entries.c.billable,
    entries.c.mapping_revision,
)


@dataclass(slots=True)
class _Group:
    line: Line
    tasks: set[str]
    members: list[str]
    entries: int = 0


def desired_lines(
    conn: Connection,
    spec: SinkSpec,
    label: str,
    catalogs: Catalogs,
    gates: DeliverySettings,
    as_of: datetime,
) -> MonthDesired:
    """Every line ``spec.sink`` should hold for the work dates of month ``label`` (adjustments aside)."""
    # Longer than most: one streaming pass over the month's entries decides hold, payee, rate and
    # line key together per row, so a large month is read once and never held in memory as rows.
    start, end = month_bounds(label)
    result = MonthDesired(label)
    groups: dict[str, _Group] = {}
    rows = conn.execute(
        select(*_ENTRY_COLUMNS)
        .where(entries.c.deleted_at.is_(None), and_(entries.c.work_date >= start, entries.c.work_date <= end))
        .order_by(entries.c.work_date, entries.c.source, entries.c.account, entries.c.external_id)
    )
    for row in rows:
        payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
        if row.code is None:
            held = result.held["unmapped"]
            held.entries += 1
            held.seconds += row.duration_seconds
            continue
        reason = gate_hold(
            gates.gate(row.source), payload.get("approval_status"), row.work_date, gates.settle_hours, as_of
        )
        if reason is not None:
            held = result.held[reason]
            held.entries += 1
            held.seconds += row.duration_seconds
            continue
        contractor = row.contractor or row.person_name
        code = catalogs.code(row.mapping_revision, row.code)
        person = catalogs.person(row.mapping_revision, contractor)
        payee = (getattr(person, spec.payee_field) if person is not None and spec.payee_field else None) or contractor
        rate, currency = rate_on(code, row.work_date)
        billable = bool(row.billable)
        task = (payload.get("task") or {}).get("name") or ""
        member = f"{row.source}:{row.account}:{row.external_id}"
        if spec.granularity == "entry":
            key = short_key("entry:", f"entry:{label}:{member}")
            work_date = row.work_date
            text = payload.get("description") if not spec.drop_descriptions else None
            description = " — ".join(part for part in (task, (text or "").strip()) if part) or None
        else:
            when = row.work_date.isoformat() if spec.granularity == "day" else label
            key = f"{spec.granularity}:{when}:{digest(contractor, row.code, billable, rate, currency)[:24]}"
            work_date = row.work_date if spec.granularity == "day" else end
            description = None
        group = groups.get(key)
        if group is None:
            line = Line.with_refs(
                _refs(spec, code),
                sink=spec.sink,
                line_key=key,
                version=0,
                work_date=work_date,
                period_end=end,
                person=contractor,
                payee=payee,
                code=row.code,
                client=row.client or (code.client if code is not None else ""),
                seconds=0,
                currency=currency,
                billable=billable,
                hourly_rate=rate,
                cost_center=row.cost_center,
                description=description,
            )
            group = groups[key] = _Group(line, set(), [])
        group.line = replace(group.line, seconds=group.line.seconds + row.duration_seconds)
        group.entries += 1
        group.members.append(member)
        if task:
            group.tasks.add(task)
    for key, group in groups.items():
        line = group.line
        if spec.granularity != "entry":
            code = catalogs.code(None, line.code)
            name = code.name if code is not None else line.code
            tasks = "; ".join(sorted(group.tasks))
            text = f"{name}: {group.entries} {'entry' if group.entries == 1 else 'entries'}"
            if tasks:
                text = f"{text} ({tasks})"
            line = replace(line, description=text[:MAX_DESCRIPTION])
        result.lines[key] = line
        result.members[key] = group.members
    return result
