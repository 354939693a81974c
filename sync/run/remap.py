"""The remap stage: map the open periods' entries that another revision (or none) mapped, with the bound matcher."""

from __future__ import annotations

from dataclasses import dataclass

from sync.delivery import periods
from sync.reporting.lines import stored_entry
from sync.run.context import RunContext
from sync.store import revisions
from sync.store.mapped import BoundMatcher, mapping_columns


@dataclass(frozen=True, slots=True)
class RemapResult:
    """How many entries were (re)mapped, and the months they fall in (their lines are planned again)."""

    mapped: int
    months: frozenset[str]


def remap(context: RunContext, matcher: BoundMatcher) -> RemapResult:
    """Map every live entry of the open periods whose result is missing or came from another revision.

    Entries up to the end of the latest closed month keep the revision that mapped them (unless
    they changed). One transaction per batch of entries.
    """
    total = 0
    after = 0
    months: set[str] = set()
    while True:
        with context.engine.begin() as conn:
            closed_through = periods.closed(conn).closed_through
            rows = revisions.entries_to_map(conn, matcher.revision, closed_through=closed_through, after_id=after)
            if not rows:
                return RemapResult(total, frozenset(months))
            results = []
            for row in rows:
                entry = stored_entry(row)
                months.add(periods.month_label(entry.work_date))
                results.append({"id": row.id} | mapping_columns(matcher, entry))
            total += revisions.store_mappings(conn, matcher.revision, matcher.document_hash, results)
            after = rows[-1].id
