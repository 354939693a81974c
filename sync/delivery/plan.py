"""Desired accounting lines per sink, diffed against what was delivered: the ops a delivery must make."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import Connection, and_, func, select

from connectors import delivery as d
from connectors.base import registered_sinks, sink_plugin
from connectors.delivery import Line, OpKind
from mappings.schema import Code, MappingDocument, PersonMapping, normalize_name
from sync.delivery.periods import ClosedPeriods, month_bounds, month_label, next_month, previous_month
from sync.settings import DeliverySettings, Granularity
from sync.store.tables import delivered_lines, entries, outbox

ADJUSTMENT_PREFIX = "adj:"
# Outbox states whose op has not reached an end: the line waits until its outcome is known.
OPEN_STATES = ("pending", "sending", "unknown")
DEFAULT_CURRENCY = "USD"
_MAX_KEY = 255
_MAX_DESCRIPTION = 400

HoldReason = Literal["unmapped", "awaiting approval", "not settled"]


# --------------------------------------------------------------------------- lines as stored values


def line_to_json(line: Line, *, adjusts: str | None = None, adjusts_period: str | None = None) -> dict[str, Any]:
    """A line as JSON (money as text, dates ISO); ``adjusts`` names the closed line an adjustment corrects."""
    data: dict[str, Any] = {
        "sink": line.sink,
        "line_key": line.line_key,
        "version": line.version,
        "work_date": line.work_date.isoformat(),
        "period_end": line.period_end.isoformat(),
        "person": line.person,
        "payee": line.payee,
        "code": line.code,
        "client": line.client,
        "seconds": line.seconds,
        "currency": line.currency,
        "billable": line.billable,
        "hourly_rate": None if line.hourly_rate is None else format(line.hourly_rate, "f"),
        "cost_center": line.cost_center,
        "refs": [list(pair) for pair in line.refs],
        "description": line.description,
    }
    if adjusts is not None:
        data["adjusts"] = adjusts
        data["adjusts_period"] = adjusts_period
    return data


def line_from_json(data: Mapping[str, Any]) -> Line:
    rate = data.get("hourly_rate")
    return Line(
        sink=data["sink"],
        line_key=data["line_key"],
        version=int(data["version"]),
        work_date=date.fromisoformat(data["work_date"]),
        period_end=date.fromisoformat(data["period_end"]),
        person=data["person"],
        payee=data["payee"],
        code=data["code"],
        client=data["client"],
        seconds=int(data["seconds"]),
        currency=data.get("currency") or DEFAULT_CURRENCY,
        billable=bool(data.get("billable")),
        hourly_rate=None if rate is None else Decimal(rate),
        cost_center=data.get("cost_center"),
        refs=tuple((str(k), str(v)) for k, v in data.get("refs") or ()),
        description=data.get("description"),
    )


def content_hash(line: Line) -> str:
    """What makes two versions of a line the same content (the version number itself does not)."""
    data = line_to_json(line)
    data.pop("version")
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


def _short_key(prefix: str, natural: str) -> str:
    return natural if len(natural) <= _MAX_KEY else f"{prefix}{_digest(natural)[:40]}"


def adjustment_key(target_period: str, line_key: str) -> str:
    return f"{ADJUSTMENT_PREFIX}{target_period}:{_digest(line_key)[:32]}"


# --------------------------------------------------------------------------- what a sink wants


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
            key = _short_key("entry:", f"entry:{label}:{member}")
            work_date = row.work_date
            text = payload.get("description") if not spec.drop_descriptions else None
            description = " — ".join(part for part in (task, (text or "").strip()) if part) or None
        else:
            when = row.work_date.isoformat() if spec.granularity == "day" else label
            key = f"{spec.granularity}:{when}:{_digest(contractor, row.code, billable, rate, currency)[:24]}"
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
            line = replace(line, description=text[:_MAX_DESCRIPTION])
        result.lines[key] = line
        result.members[key] = group.members
    return result


# --------------------------------------------------------------------------- the diff


@dataclass(frozen=True, slots=True)
class PlannedOp:
    kind: OpKind
    line: Line  # carries the version the op is keyed by
    content_hash: str
    period: str
    target_remote_id: str | None = None
    target_sync_token: str | None = None
    adjusts: str | None = None
    adjusts_period: str | None = None


@dataclass(frozen=True, slots=True)
class CreditNeeded:
    """A closed line whose time went down after it closed: a sink cannot take negative time."""

    sink: str
    period: str
    line_key: str
    person: str
    code: str
    seconds: int  # negative


@dataclass(slots=True)
class Plan:
    sink: str
    ops: list[PlannedOp] = field(default_factory=list)
    credits: list[CreditNeeded] = field(default_factory=list)
    held: dict[str, dict[str, Held]] = field(default_factory=dict)  # month -> reason -> held
    waiting: int = 0  # lines skipped because an earlier op's outcome is still open
    capped: int = 0  # ops left for a later run (max_ops_per_run)
    desired: dict[str, MonthDesired] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Delivered:
    line_key: str
    version: int
    content_hash: str
    line: dict[str, Any]
    seconds: int
    remote_id: str | None
    sync_token: str | None
    deleted: bool


def _delivered(conn: Connection, sink: str, label: str) -> dict[str, _Delivered]:
    rows = conn.execute(
        select(delivered_lines).where(delivered_lines.c.sink == sink, delivered_lines.c.period == label)
    )
    return {
        r.line_key: _Delivered(
            r.line_key, r.version, r.content_hash, r.line, r.seconds, r.remote_id, r.sync_token, bool(r.deleted)
        )
        for r in rows
    }


def _versions(conn: Connection, sink: str, label: str) -> tuple[dict[str, int], set[str]]:
    """Highest version per line of the month, and the lines whose latest op is still open."""
    versions = {
        key: int(v)
        for key, v in conn.execute(
            select(outbox.c.line_key, func.max(outbox.c.version))
            .where(outbox.c.sink == sink, outbox.c.period == label)
            .group_by(outbox.c.line_key)
        )
    }
    waiting = set(
        conn.execute(
            select(outbox.c.line_key).where(
                outbox.c.sink == sink, outbox.c.period == label, outbox.c.state.in_(OPEN_STATES)
            )
        ).scalars()
    )
    return versions, waiting


def months_to_plan(conn: Connection, sink: str, touched: Iterable[str], closed: ClosedPeriods) -> list[str]:
    """``touched`` plus what keeps adjustments whole: the closed months feeding an open month's
    adjustments, the open month a closed month's adjustments go to, months holding adjustment lines,
    and months with ops still open."""
    months = set(touched)
    months.update(
        conn.execute(
            select(delivered_lines.c.period).where(
                delivered_lines.c.sink == sink,
                delivered_lines.c.line_key.startswith(ADJUSTMENT_PREFIX),
                delivered_lines.c.deleted.is_(False),
            )
        ).scalars()
    )
    months.update(
        conn.execute(
            select(outbox.c.period).where(outbox.c.sink == sink, outbox.c.state.in_(OPEN_STATES)).distinct()
        ).scalars()
    )
    for _ in range(2):  # closing over both directions once more covers chains of closed months
        for label in list(months):
            if closed.is_closed(label):
                months.add(closed.first_open_after(label))
        for label in list(months):
            if not closed.is_closed(label):
                earlier = previous_month(label)
                while closed.is_closed(earlier):
                    months.add(earlier)
                    earlier = previous_month(earlier)
    return sorted(months)


def _prior_adjustments(conn: Connection, sink: str, closed: ClosedPeriods) -> dict[str, int]:
    """Seconds already adjusted per closed line, by adjustment lines that are themselves closed."""
    totals: dict[str, int] = defaultdict(int)
    rows = conn.execute(
        select(delivered_lines.c.line, delivered_lines.c.period, delivered_lines.c.seconds).where(
            delivered_lines.c.sink == sink,
            delivered_lines.c.line_key.startswith(ADJUSTMENT_PREFIX),
            delivered_lines.c.deleted.is_(False),
        )
    )
    for row in rows:
        if closed.is_closed(row.period) and row.line.get("adjusts"):
            totals[row.line["adjusts"]] += int(row.seconds)
    return totals


def plan_deliveries(
    conn: Connection,
    spec: SinkSpec,
    months: Iterable[str],
    *,
    closed: ClosedPeriods,
    catalogs: Catalogs,
    gates: DeliverySettings,
    as_of: datetime,
    max_ops: int | None = None,
) -> Plan:
    """The ops that make ``spec.sink`` hold the desired lines of ``months`` (see ``months_to_plan``).

    Open months: create what is missing, update what changed, delete what should no longer be there.
    Closed months are never touched: the difference between what they should hold and what they
    hold becomes an adjustment line in the first open month after them (a decrease, which no sink
    can hold as negative time, is reported as a credit to book by hand).
    """
    plan = Plan(spec.sink)
    prior = _prior_adjustments(conn, spec.sink, closed)
    adjustments: dict[str, dict[str, tuple[Line, str, str]]] = defaultdict(dict)
    ordered = sorted(set(months))
    for label in ordered:
        desired = desired_lines(conn, spec, label, catalogs, gates, as_of)
        plan.desired[label] = desired
        plan.held[label] = dict(desired.held)
        if not closed.is_closed(label):
            continue
        delivered = _delivered(conn, spec.sink, label)
        target = closed.first_open_after(label)
        start, end = month_bounds(target)
        for key in sorted(set(desired.lines) | {k for k in delivered if not k.startswith(ADJUSTMENT_PREFIX)}):
            want = desired.lines.get(key)
            have = delivered.get(key)
            held_seconds = 0 if have is None or have.deleted else have.seconds
            delta = (want.seconds if want is not None else 0) - held_seconds - prior.get(key, 0)
            if delta == 0:
                continue
            model = want if want is not None else _line_of(have)
            if delta < 0:
                plan.credits.append(CreditNeeded(spec.sink, label, key, model.person, model.code, delta))
                continue
            original = model.work_date.isoformat() if spec.granularity != "period" else label
            text = f"Adjustment of {label} ({original})"
            if model.description:
                text = f"{text}: {model.description}"
            adjustment = replace(
                model,
                line_key=adjustment_key(target, key),
                work_date=start,
                period_end=end,
                seconds=delta,
                description=text[:_MAX_DESCRIPTION],
            )
            adjustments[target][adjustment.line_key] = (adjustment, key, label)
    for label in ordered:
        if closed.is_closed(label):
            continue
        _diff_open_month(conn, spec, plan, label, adjustments.get(label, {}), max_ops)
    return plan


def _line_of(have: _Delivered | None) -> Line:
    assert have is not None
    return line_from_json(have.line)


def _diff_open_month(
    conn: Connection,
    spec: SinkSpec,
    plan: Plan,
    label: str,
    adjustments: Mapping[str, tuple[Line, str, str]],
    max_ops: int | None,
) -> None:
    desired = plan.desired[label]
    wanted: dict[str, tuple[Line, str | None, str | None]] = {k: (v, None, None) for k, v in desired.lines.items()}
    wanted.update({k: (line, adjusts, period) for k, (line, adjusts, period) in adjustments.items()})
    delivered = _delivered(conn, spec.sink, label)
    versions, waiting = _versions(conn, spec.sink, label)

    def add(op: PlannedOp) -> None:
        if max_ops is not None and len(plan.ops) >= max_ops:
            plan.capped += 1
            return
        plan.ops.append(op)

    for key in sorted(set(wanted) | set(delivered)):
        if key in waiting:
            plan.waiting += 1
            continue
        have = delivered.get(key)
        live = have is not None and not have.deleted
        version = versions.get(key, 0) + 1
        if key not in wanted:
            if live:
                assert have is not None
                old = replace(line_from_json(have.line), version=version)
                add(PlannedOp("delete", old, have.content_hash, label, have.remote_id, have.sync_token))
            continue
        line, adjusts, adjusts_period = wanted[key]
        line = replace(line, version=version)
        digest = content_hash(replace(line, version=0))
        if live:
            assert have is not None
            if have.content_hash == digest:
                continue
            add(PlannedOp("update", line, digest, label, have.remote_id, have.sync_token, adjusts, adjusts_period))
        else:
            add(PlannedOp("create", line, digest, label, None, None, adjusts, adjusts_period))


def touched_months(start: date, end: date) -> list[str]:
    labels: list[str] = []
    label = month_label(start)
    while label <= month_label(end):
        labels.append(label)
        label = next_month(label)
    return labels
