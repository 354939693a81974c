"""Reconcile one month across the PM tools, the ledger and every sink, priced by the run's mapping."""

from __future__ import annotations

from collections.abc import Mapping

from connectors.base import Sink, Source
from sync.delivery.reconcile import Reconciliation, reconcile
from sync.run.context import RunContext
from sync.run.factory import sink_specs
from sync.run.mapping import RunMapping


def reconcile_month(
    context: RunContext,
    label: str,
    mapping: RunMapping,
    *,
    sources: Mapping[str, Source],
    sinks: Mapping[str, Sink],
) -> Reconciliation:
    """The month ``label`` compared line by line (see sync/delivery/reconcile.py); ``sources`` may be empty."""
    return reconcile(
        context.engine,
        label,
        sources=sources,
        sinks=sinks,
        specs=sink_specs(context.settings),
        catalogs=mapping.catalogs(context.engine),
        gates=context.settings.delivery,
        as_of=context.as_of,
    )
