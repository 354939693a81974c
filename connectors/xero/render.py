"""Render delivery lines as Xero payloads: Projects API time entries and Accounting API ACCPAY bill lines."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from connectors.delivery import KEY_NAMESPACE, Line, hours_from_minutes, marked_text

# Xero Projects: a time entry lasts 1 to 59940 minutes (999 hours).
MIN_MINUTES = 1
MAX_MINUTES = 59_940
# Xero: free-text fields have no limit in the spec; 4000 keeps well inside what the UI shows.
DESCRIPTION_LIMIT = 4000
BILL_NUMBER_PREFIX = "HB-"
# The work date as ``render_line_item`` writes it into a bill line's summary ("code · client · person · date").
_WRITTEN_DATE = re.compile(r" · (\d{4}-\d{2}-\d{2})(?= · |$)")


def entry_minutes(line: Line) -> int:
    """Minutes for a time entry: the shared half-up rounding, then Xero's 1-59940 range.

    A positive duration below a minute becomes 1 (the rounding rule already floors at 1). Above
    59940 minutes the line is refused, never clamped (that would lose time) nor split (one op must
    stay one remote record so it can be updated and deleted): deliver such time at day granularity.
    """
    minutes = line.minutes
    if minutes < MIN_MINUTES:
        raise ValueError(f"line {line.line_key} has no time to deliver; plan a delete instead")
    if minutes > MAX_MINUTES:
        raise ValueError(
            f"line {line.line_key} holds {minutes} minutes, more than the {MAX_MINUTES} a Xero time entry "
            "allows; deliver Xero projects time per day, not per period"
        )
    return minutes


def entry_date_utc(work_date: date, zone: ZoneInfo) -> str:
    """Noon of the work date in the organisation's zone, in UTC: the same calendar day in Xero for any offset."""
    local = datetime.combine(work_date, time(12, 0), tzinfo=zone)
    return local.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_time_entry(
    line: Line, *, key: str, user_id: str, task_id: str, zone: ZoneInfo, include_description: bool = True
) -> dict[str, Any]:
    """A ``TimeEntryCreateOrUpdate``; the description is always sent (on update, leaving it out nulls it)."""
    return {
        "userId": user_id,
        "taskId": task_id,
        "dateUtc": entry_date_utc(line.work_date, zone),
        "duration": entry_minutes(line),
        "description": marked_text(key, line.description if include_description else None, limit=DESCRIPTION_LIMIT),
    }


def bill_number(line: Line, contact: str) -> str:
    """Our reference of the bill a line belongs to: one per contact, period end and currency.

    Sent as the ACCPAY InvoiceNumber (the supplier reference), where ``find`` looks bills up.
    """
    digest = uuid.uuid5(KEY_NAMESPACE, f"{line.sink}\x1fbill\x1f{contact}\x1f{line.period_end}\x1f{line.currency}")
    return f"{BILL_NUMBER_PREFIX}{line.period_end:%Y%m%d}-{digest.hex[:12].upper()}"


@dataclass(frozen=True, slots=True)
class BillIds:
    """What a bill line's names resolved to."""

    contact_id: str
    account_code: str
    tracking: tuple[tuple[str, str], ...] = ()  # (category name, option name), at most two
    tax_type: str | None = None


def render_line_item(
    line: Line, ids: BillIds, *, key: str, include_description: bool = True, line_item_id: str | None = None
) -> dict[str, Any]:
    """One ``LineItem``: hours to 4 places (``unitdp=4``) at the code's hourly rate, tracked by cost center."""
    if line.hourly_rate is None:
        raise ValueError(f"the code '{line.code}' has no hourly rate; a bill line needs one (set it in the mapping)")
    # A bill line's Quantity has no cap: the 59940-minute limit is the Projects API's, for one time entry.
    minutes = line.minutes
    if minutes < MIN_MINUTES:
        raise ValueError(f"line {line.line_key} has no time to deliver; plan a delete instead")
    summary = f"{line.code} · {line.client} · {line.person} · {line.work_date.isoformat()}"
    if include_description and line.description:
        summary = f"{summary} · {line.description}"
    item: dict[str, Any] = {}
    if line_item_id is not None:
        item["LineItemID"] = line_item_id
    item["Description"] = marked_text(key, summary, limit=DESCRIPTION_LIMIT)
    item["Quantity"] = hours_from_minutes(minutes)
    item["UnitAmount"] = line.hourly_rate
    item["AccountCode"] = ids.account_code
    if ids.tax_type is not None:
        item["TaxType"] = ids.tax_type
    if ids.tracking:
        item["Tracking"] = [{"Name": name, "Option": option} for name, option in ids.tracking]
    return item


def written_work_date(description: str | None) -> date | None:
    """The work date ``render_line_item`` wrote into a bill line's description, if it is still there."""
    for match in _WRITTEN_DATE.finditer(description or ""):
        try:
            return date.fromisoformat(match.group(1))
        except ValueError:
            continue
    return None


def render_bill(
    line: Line,
    ids: BillIds,
    items: list[dict[str, Any]],
    *,
    number: str,
    due_days: int,
    line_amount_types: str,
    invoice_id: str | None = None,
    status: str = "DRAFT",
) -> dict[str, Any]:
    """A draft ACCPAY ``Invoice`` (a bill) dated at the period end; ``invoice_id`` makes it an update."""
    bill: dict[str, Any] = {}
    if invoice_id is not None:
        bill["InvoiceID"] = invoice_id
    bill["Type"] = "ACCPAY"
    bill["Contact"] = {"ContactID": ids.contact_id}
    bill["Date"] = line.period_end.isoformat()
    bill["DueDate"] = (line.period_end + timedelta(days=due_days)).isoformat()
    bill["LineAmountTypes"] = line_amount_types
    bill["InvoiceNumber"] = number
    bill["CurrencyCode"] = line.currency
    bill["Status"] = status
    if items:
        bill["LineItems"] = items
    return bill


def money(value: Any) -> Decimal | None:
    """A vendor number as a Decimal (through its text, never through float arithmetic)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None
