"""Read the ledger's stored entries back: entries from stored payloads (with their stored hash) and report lines."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, Engine

from connectors.model import TimeEntry
from sync.reporting.model import Period, ReportLine
from sync.store import ledger, revisions


def stored_entry(row: Any) -> TimeEntry:
    """The entry a ledger row holds, rebuilt from its payload under the content hash stored beside it.

    The stored hash is the entry's identity as it was written; hashing the payload again would only
    cost time (and could differ from what delivery and remapping compare against).
    """
    return TimeEntry.from_payload(row.payload, content_hash=row.content_hash)


class CodeNames:
    """Code names as the stored revision that mapped each entry has them (each revision read once).

    A report shows what the revision that mapped an entry called its code, so renaming a code in a
    newer document shows only once the entries are mapped again. No document is loaded or validated.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._names: dict[int | None, dict[str, str]] = {}

    def name(self, code: str, revision: int | None) -> str | None:
        names = self._names.get(revision)
        if names is None:
            names = self._names[revision] = self._load(revision)
        return names.get(code)

    def _load(self, revision: int | None) -> dict[str, str]:
        # Entries mapped before revisions were stored name no revision: the current one names them.
        stored = revisions.current(self._conn) if revision is None else revisions.get(self._conn, revision)
        if stored is None:
            return {}
        codes = json.loads(stored.canonical_json).get("codes", {})
        return {key: str(value.get("name")) for key, value in codes.items()}


def report_lines(conn: Connection, period: Period, *, drop_descriptions: bool) -> list[ReportLine]:
    """Every live ledger entry of ``period``, mapped or not, as report lines in report order."""
    names = CodeNames(conn)
    return [
        report_line(row, names, drop_descriptions=drop_descriptions)
        for row in ledger.live_entries_between(conn, period.start, period.end)
    ]


def report_line(row: Any, names: CodeNames, *, drop_descriptions: bool) -> ReportLine:
    """One ledger row as a report line: mapping columns as stored, task and containers from the payload."""
    entry = stored_entry(row)
    return ReportLine(
        source=row.source,
        account=row.account,
        external_id=row.external_id,
        work_date=row.work_date,
        seconds=row.duration_seconds,
        person_id=row.person_id,
        person_name=row.person_name,
        contractor=row.contractor or row.person_name or row.person_id,
        code=row.code,
        code_name=names.name(row.code, row.mapping_revision) if row.code else None,
        client=row.client,
        cost_center=row.cost_center,
        billable=bool(row.billable),
        rule_id=row.rule_id,
        unmapped_reason=row.unmapped_reason,
        unmapped_detail=row.unmapped_detail,
        task=entry.task.name if entry.task else "",
        container=" / ".join(c.name or c.id for c in entry.containers),
        description="" if drop_descriptions else (entry.description or ""),
        version=row.version,
    )


def read_report_lines(engine: Engine, period: Period, *, drop_descriptions: bool) -> list[ReportLine]:
    """``report_lines`` on a connection of its own: what `report` and `statement` read, and nothing else."""
    with engine.connect() as conn:
        return report_lines(conn, period, drop_descriptions=drop_descriptions)
