"""Adoption: before creating, take over the records a sink already holds under our key markers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from connectors.delivery import Holding, Line, idempotency_key
from sync.delivery.plan import PlannedOp

# The deepest line version a held marker is matched against when it is none of the planned keys.
# A key names (sink, line, version) and cannot be read back, so a record written by another ledger
# at another version is found by computing that line's keys version by version. Lines rarely pass
# a handful of versions; this bounds the cost (about 4 µs a key) to records nobody here explains.
ADOPT_VERSIONS = 100

# The content hash recorded for a record adopted at another version: its text and refs are not
# known here (a holding says only key, date and minutes), so it never equals a real hash and the
# next plan sends an update that makes the record hold exactly the desired line.
UNKNOWN_CONTENT = "adopted"


@dataclass(frozen=True, slots=True)
class Adopted:
    """A planned create or update whose line the sink already holds: record it, do not send it.

    ``same`` is true when the record carries the planned op's very key (the op itself landed,
    written by another ledger or a run whose receipt was lost); otherwise it was written at
    ``version`` and its content is taken as unknown.
    """

    op: PlannedOp
    holding: Holding
    version: int
    same: bool

    @property
    def line(self) -> Line:
        if self.same:
            return self.op.line
        return replace(self.op.line, version=self.version, seconds=self.holding.minutes * 60)

    @property
    def content_hash(self) -> str:
        return self.op.content_hash if self.same else UNKNOWN_CONTENT


def months_to_read(ops: Iterable[PlannedOp]) -> dict[str, list[PlannedOp]]:
    """The creates and updates of each month that has any: one read-back per month covers them all.

    Updates are read too: a restored ledger's update may already have been made by the ledger it
    was copied from, and sending it again with the old version (QuickBooks' SyncToken) would fail.
    """
    by_month: dict[str, list[PlannedOp]] = defaultdict(list)
    for op in ops:
        if op.kind in ("create", "update"):
            by_month[op.period].append(op)
    return dict(sorted(by_month.items()))


def unexplained(holdings: Iterable[Holding], known: set[str]) -> dict[str, Holding]:
    """The sink's records whose key this ledger never enqueued (the first record of a key wins)."""
    found: dict[str, Holding] = {}
    for holding in holdings:
        if holding.idempotency_key not in known:
            found.setdefault(holding.idempotency_key, holding)
    return found


def match(sink: str, ops: Sequence[PlannedOp], held: Mapping[str, Holding]) -> list[Adopted]:
    """The planned ops whose line one of the ``held`` records (keys this ledger does not know) holds.

    First the planned key itself; then, for records still unexplained, every earlier or later
    version of the remaining lines up to ``ADOPT_VERSIONS`` (the highest version found wins; other
    records of the same line stay duplicates that ``reconcile`` reports). An update adopts only
    the record it targets: another record of its line is a duplicate made elsewhere, not its own.
    """
    left = dict(held)
    adopted: list[Adopted] = []
    remaining: list[PlannedOp] = []
    for op in ops:
        key = idempotency_key(sink, op.line.line_key, op.line.version)
        holding = left.get(key)
        if holding is not None and _fits(op, holding):
            del left[key]
            adopted.append(Adopted(op, holding, op.line.version, same=True))
        else:
            remaining.append(op)
    for op in remaining:
        if not left:
            break
        best: tuple[int, str] | None = None
        for version in range(1, max(ADOPT_VERSIONS, op.line.version + 1) + 1):
            key = idempotency_key(sink, op.line.line_key, version)
            holding = left.get(key)
            if holding is not None and _fits(op, holding):
                best = (version, key)
        if best is not None:
            adopted.append(Adopted(op, left.pop(best[1]), best[0], same=False))
    return adopted


def _fits(op: PlannedOp, holding: Holding) -> bool:
    return op.kind == "create" or holding.remote_id == op.target_remote_id
