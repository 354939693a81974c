"""Read back the ledger's live entries of one scope by external id, for sources that reuse stored details."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from connectors.model import TimeEntry
from sync.store.tables import entries

# Ids per query: far below every database's bound-parameter limit.
_CHUNK = 500


def live_entries(conn: Connection, source: str, account: str, external_ids: Sequence[str]) -> dict[str, TimeEntry]:
    """external_id -> the stored entry, for the ids that are live (not tombstoned) in the ledger."""
    found: dict[str, TimeEntry] = {}
    for start in range(0, len(external_ids), _CHUNK):
        keys = list(external_ids[start : start + _CHUNK])
        rows = conn.execute(
            select(entries.c.external_id, entries.c.payload, entries.c.content_hash).where(
                entries.c.source == source,
                entries.c.account == account,
                entries.c.external_id.in_(keys),
                entries.c.deleted_at.is_(None),
            )
        )
        for row in rows:
            found[row.external_id] = TimeEntry.from_payload(row.payload, content_hash=row.content_hash)
    return found
