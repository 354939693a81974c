"""Diff the desired lines against what each sink was delivered: the ops a delivery must make, adjustments included."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from connectors.delivery import Line, OpKind
from sync.delivery.desired import Catalogs, Held, MonthDesired, SinkSpec, desired_lines
from sync.delivery.lines import ADJUSTMENT_PREFIX, MAX_DESCRIPTION, adjustment_key, content_hash, line_from_json
from sync.delivery.periods import ClosedPeriods, month_bounds, month_label, next_month, previous_month
from sync.settings import DeliverySettings
from sync.store.outbox import OPEN_STATES
from sync.store.tables import delivered_lines, outbox

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
    """A line whose time went below what closed months hold for it: a sink cannot take negative time.

    ``period`` is the month of the line: a closed one, or a reopened one whose earlier adjustments
    sit in a month that is still closed.
    """

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


@dataclass(slots=True)
class _Prior:
    """What adjustment lines in closed months already added to one line of an earlier month."""

    period: str | None  # the month of the line they adjust (closed, or closed then reopened)
    seconds: int
    model: Line  # one of them, to describe the line when nothing else is left of it


def _prior_adjustments(conn: Connection, sink: str, closed: ClosedPeriods) -> dict[str, _Prior]:
    """Seconds already adjusted per closed line, by adjustment lines that are themselves closed."""
    totals: dict[str, _Prior] = {}
    rows = conn.execute(
        select(delivered_lines.c.line, delivered_lines.c.period, delivered_lines.c.seconds)
        .where(
            delivered_lines.c.sink == sink,
            delivered_lines.c.line_key.startswith(ADJUSTMENT_PREFIX),
            delivered_lines.c.deleted.is_(False),
        )
        .order_by(delivered_lines.c.period, delivered_lines.c.line_key)
    )
    for row in rows:
        adjusts = row.line.get("adjusts")
        if not closed.is_closed(row.period) or not adjusts:
            continue
        prior = totals.get(adjusts)
        if prior is None:
            prior = totals[adjusts] = _Prior(row.line.get("adjusts_period"), 0, line_from_json(row.line))
        prior.seconds += int(row.seconds)
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
    can hold as negative time, is reported as a credit to book by hand). A reopened month's lines
    carry only what adjustments in months still closed do not already carry for them.
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
        # Every line the month holds or should hold, and every line it never held itself but that
        # closed adjustments hold for it (time first delivered as an adjustment, then its month closed).
        keys = set(desired.lines) | {k for k in delivered if not k.startswith(ADJUSTMENT_PREFIX)}
        keys.update(k for k, p in prior.items() if p.period == label)
        for key in sorted(keys):
            want = desired.lines.get(key)
            have = delivered.get(key)
            adjusted = prior.get(key)
            held_seconds = 0 if have is None or have.deleted else have.seconds
            delta = (want.seconds if want is not None else 0) - held_seconds - (adjusted.seconds if adjusted else 0)
            if delta == 0:
                continue
            model = want if want is not None else _line_of(have, adjusted)
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
                description=text[:MAX_DESCRIPTION],
            )
            adjustments[target][adjustment.line_key] = (adjustment, key, label)
    for label in ordered:
        if closed.is_closed(label):
            continue
        frozen = {k: p for k, p in prior.items() if p.period == label}
        _diff_open_month(conn, spec, plan, label, adjustments.get(label, {}), frozen, max_ops)
    return plan


def _line_of(have: _Delivered | None, adjusted: _Prior | None) -> Line:
    """The line a closed month no longer wants: as it was delivered, else as its closed adjustments carry it."""
    if have is not None:
        return line_from_json(have.line)
    assert adjusted is not None
    return adjusted.model


def _diff_open_month(
    conn: Connection,
    spec: SinkSpec,
    plan: Plan,
    label: str,
    adjustments: Mapping[str, tuple[Line, str, str]],
    frozen: Mapping[str, _Prior],
    max_ops: int | None,
) -> None:
    """``frozen``: the month was closed and reopened, and these of its lines have adjustments in a
    month that is still closed. Those adjustments stay, so each line carries only the rest of its
    time, and time below what they carry is a credit."""
    desired = plan.desired[label]
    wanted: dict[str, tuple[Line, str | None, str | None]] = {}
    for key in sorted(set(desired.lines) | set(frozen)):
        want = desired.lines.get(key)
        carried = frozen.get(key)
        rest = (want.seconds if want is not None else 0) - (carried.seconds if carried is not None else 0)
        if rest > 0:
            assert want is not None
            wanted[key] = (want if carried is None else replace(want, seconds=rest), None, None)
        elif rest < 0:
            assert carried is not None
            model = want if want is not None else carried.model
            plan.credits.append(CreditNeeded(spec.sink, label, key, model.person, model.code, rest))
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
