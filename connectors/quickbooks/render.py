"""Render delivery lines as QuickBooks Online TimeActivity and batch payloads (JSON, XSD element order)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from connectors.delivery import Line, Op, marked_text

# QuickBooks: TimeActivity.Description is an xs:string in the XSD; Intuit's reference page caps it at
# 4000 characters (not in the XSD, so unconfirmed); the marker and the text together stay within it.
DESCRIPTION_LIMIT = 4000
# QuickBooks: a batch item id is at most 10 characters when the batch also carries a requestid.
MAX_BID_LENGTH = 10

NameOf = Literal["Vendor", "Employee"]


@dataclass(frozen=True, slots=True)
class QuickBooksIds:
    """The QuickBooks ids a line's names resolved to (``None``: the line does not use that dimension)."""

    payee: str
    customer: str
    item: str
    klass: str | None = None
    department: str | None = None


def _ref(value: str, name: str | None = None) -> dict[str, str]:
    # ReferenceType is simple content (the id) with optional name/type attributes; JSON spells the
    # content "value".
    return {"value": value} if name is None else {"value": value, "name": name}


def duration_fields(minutes: int) -> dict[str, int]:
    """``Hours`` and ``Minutes`` (0-59) for a whole number of minutes.

    ``Seconds`` is declared by the XSD (0-59) but is not sent: every sink delivers whole minutes
    (see ``billable_minutes``) so QuickBooks, Xero and our reports agree to the minute, and
    QuickBooks shows and invoices time as hours and minutes.
    """
    if minutes < 0:
        raise ValueError("minutes must not be negative")
    return {"Hours": minutes // 60, "Minutes": minutes % 60}


def render_time_activity(
    line: Line,
    ids: QuickBooksIds,
    *,
    key: str,
    name_of: NameOf = "Vendor",
    include_description: bool = True,
    remote_id: str | None = None,
    sync_token: str | None = None,
) -> dict[str, Any]:
    """One TimeActivity, its elements in the XSD's sequence order (IntuitEntity's first).

    ``remote_id``/``sync_token`` turn it into a full update of that record.
    """
    if line.seconds <= 0:
        raise ValueError(f"line {line.line_key} has no time to deliver; plan a delete instead")
    body: dict[str, Any] = {}
    if remote_id is not None:
        body["Id"] = remote_id
        body["SyncToken"] = sync_token if sync_token is not None else "0"
    body["TxnDate"] = line.work_date.isoformat()
    body["NameOf"] = name_of
    body["EmployeeRef" if name_of == "Employee" else "VendorRef"] = _ref(ids.payee, line.payee)
    body["CustomerRef"] = _ref(ids.customer)
    if ids.department is not None:
        body["DepartmentRef"] = _ref(ids.department)
    body["ItemRef"] = _ref(ids.item)
    if ids.klass is not None:
        body["ClassRef"] = _ref(ids.klass)
    body["BillableStatus"] = "Billable" if line.billable else "NotBillable"
    # QuickBooks: the XSD calls HourlyRate "Unsupported", while Intuit's page summaries say it is
    # required for billable time. Sent whenever the time is billable and a rate is known.
    if line.billable and line.hourly_rate is not None:
        body["HourlyRate"] = line.hourly_rate
    body.update(duration_fields(line.minutes))
    text = line.description if include_description else None
    body["Description"] = marked_text(key, text, limit=DESCRIPTION_LIMIT)
    return body


def render_delete(remote_id: str, sync_token: str | None) -> dict[str, Any]:
    """A delete names only the record and the version it was read at."""
    return {"Id": remote_id, "SyncToken": sync_token if sync_token is not None else "0"}


def render_batch(items: list[tuple[str, Op, dict[str, Any]]]) -> dict[str, Any]:
    """``{"BatchItemRequest": [{bId, operation, TimeActivity}, ...]}`` for (bId, op, TimeActivity) triples."""
    requests = []
    for bid, op, activity in items:
        if len(bid) > MAX_BID_LENGTH:
            raise ValueError(f"batch item id {bid!r} is longer than {MAX_BID_LENGTH} characters")
        requests.append({"bId": bid, "operation": op.kind, "TimeActivity": activity})
    return {"BatchItemRequest": requests}
