"""The ledger's mapping columns of one entry: a matcher bound to its revision, and the one function that fills them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.model import TimeEntry
from mappings.engine import Mapped, Matcher


@dataclass(frozen=True, slots=True)
class BoundMatcher:
    """A compiled mapping document together with the stored revision it was adopted as.

    Ingest and remap receive it as a value: every result they write names the revision and the
    document hash that produced it, without calling back into whoever adopted the document.
    """

    matcher: Matcher
    revision: int

    @property
    def document_hash(self) -> str:
        return self.matcher.document_hash


def mapping_columns(bound: BoundMatcher, entry: TimeEntry) -> dict[str, Any]:
    """The ledger's mapping columns for ``entry`` under ``bound``: the only place they are computed."""
    outcome = bound.matcher.match(entry)
    common = {"mapping_hash": bound.document_hash, "mapping_revision": bound.revision}
    if isinstance(outcome, Mapped):
        return common | {
            "code": outcome.code,
            "rule_id": outcome.rule_id,
            "contractor": outcome.contractor,
            "client": outcome.client,
            "cost_center": outcome.cost_center,
            "billable": outcome.billable,
            "unmapped_reason": None,
            "unmapped_detail": None,
        }
    return common | {
        "code": None,
        "rule_id": None,
        "contractor": outcome.contractor,
        "client": None,
        "cost_center": None,
        "billable": bool(entry.billable),
        "unmapped_reason": outcome.reason,
        "unmapped_detail": outcome.detail,
    }
