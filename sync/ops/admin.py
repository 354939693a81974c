"""Admin actions of both the CLI and the console: deliver now, apply a document and re-map, close a reconciled month."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from connectors.errors import ConfigError, HourbridgeError
from sync.admin.revisions import ApplyOutcome, LoadedDocument, apply_document, choose_mapping
from sync.delivery import periods
from sync.delivery.outbox import DeliveryResult
from sync.delivery.plan import touched_months
from sync.delivery.reconcile import Reconciliation
from sync.run.context import RunContext
from sync.run.deliver import deliver as deliver_stage
from sync.run.deliver import deliverer, incomplete_summary
from sync.run.factory import build_sinks
from sync.run.mapping import adopt_mapping, load_mapping
from sync.run.reconcile import reconcile_month
from sync.run.remap import remap
from sync.settings import Settings
from sync.store import revisions
from sync.store.mapped import BoundMatcher
from sync.store.runs import never_synced
from sync.store.tables import entries

# --------------------------------------------------------------------------- deliver now


@dataclass(slots=True)
class DeliverNow:
    """What `deliver` did: each sink's result, or (dry run) each sink's plan; ``sinks`` empty = none configured."""

    sinks: tuple[str, ...] = ()
    results: dict[str, DeliveryResult] = field(default_factory=dict)
    plans: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def incomplete(self) -> list[str]:
        """One line per sink the delivery left incomplete (a failed sink, refused or unanswered writes);
        empty when every sink got everything (a dry run sends nothing, so leaves nothing undone)."""
        lines = [f"{name}: nothing delivered ({message})" for name, message in self.errors.items()]
        for result in self.results.values():
            summary = incomplete_summary(result)
            if summary is not None:
                lines.append(summary)
        return lines


def require_synced(engine: Engine) -> None:
    """Refuse to deliver from a ledger that never synced: most likely HOURBRIDGE_DATABASE_URL is mistyped."""
    with engine.connect() as conn:
        if never_synced(conn):
            url = engine.url.render_as_string(hide_password=True)
            raise ConfigError(
                f"the ledger at {url} has never synced: check HOURBRIDGE_DATABASE_URL, or run `hourbridge sync` "
                "first (deliver sends what the ledger holds, and a new ledger holds nothing)"
            )


def deliver_now(
    settings: Settings,
    engine: Engine,
    months: Iterable[str] = (),
    *,
    dry_run: bool = False,
    only: str | None = None,
) -> DeliverNow:
    """Bring the configured sinks (or sink ``only``) to the ledger's desired state, without pulling the sources.

    A failed or unanswered write is planned again under a new version, so this is also the retry.
    """
    require_synced(engine)
    # An invalid mapping document stops the command before anything is planned or sent.
    active = load_mapping(settings, engine)
    context = RunContext.create(settings, engine)
    chosen = {periods.parse_month(m) for m in months}
    if not chosen:
        with engine.connect() as conn:
            first, last = conn.execute(select(func.min(entries.c.work_date), func.max(entries.c.work_date))).one()
        chosen = set(touched_months(first, last)) if first is not None else {periods.month_label(context.as_of.date())}
    sinks = build_sinks(settings, engine)
    if only is not None and only not in sinks:
        for sink in sinks.values():
            sink.close()
        configured = ", ".join(sorted(sinks)) or "none"
        raise ConfigError(f"sink {only!r} is not configured (configured: {configured})")
    done = DeliverNow(sinks=tuple(name for name in sinks if only in (None, name)))
    try:
        if not done.sinks:
            return done
        catalogs = adopt_mapping(context, active).catalogs(engine)
        for name in done.sinks:
            sink = sinks[name]
            if dry_run:
                done.plans[name] = deliverer(context, name, sink, catalogs).plan(chosen, context.as_of)
                continue
            delivered = deliver_stage(context, name, sink, chosen, catalogs)
            if delivered.result is not None:
                done.results[name] = delivered.result
            for error in delivered.errors:
                if delivered.result is None:
                    done.errors[name] = error.message
    finally:
        for sink in sinks.values():
            sink.close()
    return done


# --------------------------------------------------------------------------- apply and re-map


@dataclass(frozen=True, slots=True)
class AppliedMapping:
    """A document applied from an editor: the outcome, and how many entries of open months were re-mapped."""

    outcome: ApplyOutcome
    remapped: int
    months: frozenset[str]


def apply_and_remap(
    settings: Settings,
    engine: Engine,
    loaded: LoadedDocument,
    *,
    author: str,
    comment: str,
    parent: int | None,
    now: datetime,
) -> AppliedMapping:
    """Store ``loaded`` as the revision after ``parent``, then map the open months' entries with it.

    The revision is one transaction (nothing half-stored; StaleParent when another revision came
    first). Re-mapping is the run's own remap stage, batch by batch: were it interrupted, the next
    run finishes it, since every entry still names the older revision that mapped it.
    """
    if settings.mappings_file.is_file():
        raise ConfigError(
            f"HOURBRIDGE_MAPPINGS_FILE names {settings.mappings_file}, which every run applies: change that file "
            "(GitOps) rather than the stored revision"
        )
    outcome = apply_document(engine, loaded, author=author, comment=comment, now=now, parent=parent)
    if not outcome.created:
        return AppliedMapping(outcome, 0, frozenset())
    context = RunContext.create(settings, engine, as_of=now, clock=lambda: now)
    result = remap(context, BoundMatcher(loaded.matcher, outcome.revision.id))
    return AppliedMapping(outcome, result.mapped, result.months)


def current_revision(engine: Engine) -> revisions.Revision | None:
    """The stored current revision (None when none was ever applied)."""
    with engine.connect() as conn:
        return revisions.current(conn)


# --------------------------------------------------------------------------- periods


def reconcile_ledger(settings: Settings, engine: Engine, label: str) -> Reconciliation:
    """Month ``label``: ledger against every configured sink (the sources are not read)."""
    label = periods.parse_month(label)
    active = choose_mapping(settings, engine)
    context = RunContext.create(settings, engine)
    sinks = build_sinks(settings, engine)
    try:
        mapping = adopt_mapping(context, active)
        return reconcile_month(context, label, mapping, sources={}, sinks=sinks)
    finally:
        for sink in sinks.values():
            sink.close()


class PeriodNotReconciled(HourbridgeError):
    """A month cannot close while its ledger and sinks disagree; ``reconciliation`` holds the differences."""

    def __init__(self, message: str, reconciliation: Reconciliation) -> None:
        super().__init__(message)
        self.reconciliation = reconciliation


def close_reconciled(
    settings: Settings,
    engine: Engine,
    label: str,
    *,
    by: str,
    reason: str,
    now: datetime,
    force: bool = False,
) -> tuple[bool, Reconciliation]:
    """Close ``label`` only when it reconciles (ledger = every sink); PeriodNotReconciled otherwise.

    ``force`` closes it over its differences, for an admin who knows why: it needs a reason, and the
    history keeps that reason with how many differences the month was closed over.
    """
    label = periods.parse_month(label)
    if force and not reason.strip():
        raise ConfigError(
            f'closing {label} whatever the reconciliation says needs a reason: pass --reason "..." '
            "(it is kept in the history)"
        )
    result = reconcile_ledger(settings, engine, label)
    if not result.ok:
        count = len(result.differences)
        if not force:
            raise PeriodNotReconciled(
                f"{label} does not reconcile ({count} differences between the ledger and the "
                "accounting sinks): deliver or fix them first (`hourbridge reconcile --period "
                f"{label}` lists them); nothing was closed",
                result,
            )
        reason = f"forced over {count} difference{'' if count == 1 else 's'}: {reason.strip()}"
    return periods.close(engine, label, by=by, reason=reason, now=now), result
