"""The deliver stage: bring one accounting sink to the desired state of the touched months."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import structlog

from connectors.base import Sink
from connectors.errors import Action, HourbridgeError
from sync.delivery.desired import Catalogs, SinkSpec
from sync.delivery.outbox import Deliverer, DeliveryResult
from sync.run.context import RunContext, RunError
from sync.run.factory import sink_specs

log = structlog.get_logger("hourbridge.run")


@dataclass(frozen=True, slots=True)
class SinkDelivery:
    """One sink's delivery: its result (None when it failed before one existed) and its run errors."""

    sink: str
    result: DeliveryResult | None
    errors: tuple[RunError, ...] = ()


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def incomplete_summary(result: DeliveryResult) -> str | None:
    """One line on what a delivery left undone, naming its sink and where to look; None when nothing.

    Refused lines wait for an admin (`status` shows the sink's message for each); unanswered writes
    and other errors only for the next delivery, which plans them again.
    """
    parts: list[str] = []
    if result.failed:
        parts.append(f"{_count(result.failed, 'line', 'lines')} failed (refused by the sink)")
    if result.unknown:
        parts.append(f"{_count(result.unknown, 'write', 'writes')} without an answer yet")
    if parts:
        where = "`hourbridge status` lists the failed lines with the sink's message; " if result.failed else ""
        return f"{result.sink}: {', '.join(parts)}; {where}the next `hourbridge deliver` or sync sends them again"
    if result.errors:
        return f"{result.sink}: {_count(len(result.errors), 'error', 'errors')} (listed above)"
    return None


def sink_spec(context: RunContext, name: str) -> SinkSpec:
    """How the planner builds ``name``'s lines (a day per person and code unless the settings say more)."""
    settings = context.settings
    return sink_specs(settings).get(name) or SinkSpec(name, "day", drop_descriptions=settings.drop_descriptions)


def deliverer(context: RunContext, name: str, sink: Sink, catalogs: Catalogs) -> Deliverer:
    """The outbox-backed deliverer of one sink under this run (heartbeats and progress included)."""
    return Deliverer(
        context.engine,
        sink,
        sink_spec(context, name),
        gates=context.settings.delivery,
        catalogs=catalogs,
        clock=context.clock,
        run_id=context.run_id,
        progress=context.progress,
        heartbeat=context.heartbeat,
    )


def deliver(context: RunContext, name: str, sink: Sink, months: Collection[str], catalogs: Catalogs) -> SinkDelivery:
    """Deliver the ``months`` (and what they imply: adjustment targets, open outcomes) to one sink."""
    try:
        result = deliverer(context, name, sink, catalogs).deliver(months, context.as_of)
    except HourbridgeError as exc:
        error = RunError.of("sink", name, exc)
        log.error("delivery.failed", sink=name, error=error.message, exc_info=True)
        return SinkDelivery(name, None, (error,))
    if not (result.failed or result.unknown or result.errors):
        return SinkDelivery(name, result)
    # Refused writes need someone to fix the line or the sink's records; unanswered ones only a retry.
    level = log.error if result.failed else log.warning
    level("delivery.incomplete", sink=name, failed=result.failed, unknown=result.unknown, errors=list(result.errors))
    incomplete = RunError(
        "sink",
        name,
        None,
        Action.CONFIG if result.failed else Action.TRANSIENT,
        "; ".join(result.errors) or f"{result.unknown} writes without an answer yet",
        failed=result.failed,
        unknown=result.unknown,
    )
    return SinkDelivery(name, result, (incomplete,))
