"""XeroBills: contractors' ACCPAY bills read back from one organisation, read-only and paged, as VendorBills."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from connectors._paging import PageNumbers
from connectors.bills import (
    BILL_REF_ACCOUNT,
    BILL_REF_ITEM,
    BILL_REF_TRACKING,
    BillLine,
    VendorBill,
    written_by_hourbridge,
)
from connectors.errors import PayloadError
from connectors.xero.client import VENDOR, XeroClient
from connectors.xero.render import money

SINK = "xero"
# Xero Accounting: a paged invoice list answers up to 100 invoices, with their line items, per page.
INVOICES_PER_PAGE = 100
# Bills deleted or voided in Xero are still listed, with this status.
GONE = ("DELETED", "VOIDED")
_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{2})?(\d{2})?\)/$")


class XeroBills:
    """Reads ACCPAY invoices (bills) dated in a range, page by page, through the sink's client and limits."""

    def __init__(self, client: XeroClient) -> None:
        self._client = client

    def bills(self, start: date, end: date, *, modified_since: datetime | None = None) -> Iterator[VendorBill]:
        """Every ACCPAY bill with ``start <= Date <= end``; deleted and voided ones come with ``deleted`` set.

        ``modified_since`` (UTC) sends ``If-Modified-Since``, so Xero answers only the bills created or
        changed since then. Bills hourbridge wrote (our ``[hb:<key>]`` marker on a line) are left out.
        """
        if end < start:
            return
        where = f'Type=="ACCPAY" AND Date>={_datetime(start)} AND Date<={_datetime(end)}'
        headers = None
        if modified_since is not None:
            if modified_since.tzinfo is None:
                raise ValueError("modified_since must be timezone-aware")
            stamp = modified_since.astimezone(UTC).replace(microsecond=0)
            headers = {"If-Modified-Since": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")}
        paging = PageNumbers(VENDOR, "the bills by date", first=1)
        seen: set[str] = set()
        while not paging.done:
            params = {"where": where, "page": str(paging.number), "unitdp": "4"}
            payload = self._client.call("accounting", "GET", "/Invoices", params=params, headers=headers)
            if payload is None:  # Xero answers 304 Not Modified with no body
                return
            if not isinstance(payload, Mapping):
                raise PayloadError("Xero answered an invoice list without a body")
            found = [b for b in payload.get("Invoices") or [] if isinstance(b, Mapping)]
            pagination = payload.get("pagination")
            count = pagination.get("pageCount") if isinstance(pagination, Mapping) else None
            last = paging.number >= count if isinstance(count, int) else len(found) < INVOICES_PER_PAGE
            paging.advance(last=last or not found, signature=tuple(str(b.get("InvoiceID")) for b in found) or None)
            for raw in found:
                if raw.get("Type", "ACCPAY") != "ACCPAY" or str(raw.get("InvoiceID")) in seen:
                    continue
                seen.add(str(raw.get("InvoiceID")))
                bill = parse_bill(raw)
                if not start <= bill.bill_date <= end or _ours(raw):
                    continue
                yield bill


def _datetime(day: date) -> str:
    # Xero's where language writes a date as DateTime(year, month, day).
    return f"DateTime({day.year},{day.month:02d},{day.day:02d})"


def _ours(raw: Mapping[str, Any]) -> bool:
    items = [i for i in raw.get("LineItems") or [] if isinstance(i, Mapping)]
    return written_by_hourbridge(*(str(i.get("Description") or "") for i in items))


def wire_date(value: object) -> datetime | None:
    """A Xero date: ``/Date(1700000000000+0000)/`` (Microsoft JSON) or ISO text, as a UTC datetime."""
    if not isinstance(value, str) or not value:
        return None
    found = _MS_DATE.match(value)
    if found is not None:
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(found.group(1)))
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _day(raw: Mapping[str, Any], field: str) -> date | None:
    # The ISO twin (DateString) names the organisation's calendar day; the /Date()/ form is midnight UTC of it.
    for value in (raw.get(f"{field}String"), raw.get(field)):
        parsed = wire_date(value)
        if parsed is not None:
            return parsed.date()
    return None


def parse_bill(raw: Mapping[str, Any]) -> VendorBill:
    """One Xero ACCPAY invoice as a VendorBill."""
    bill_id = str(raw.get("InvoiceID") or "")
    if not bill_id:
        raise PayloadError("Xero answered a bill without an InvoiceID")
    bill_date = _day(raw, "Date")
    if bill_date is None:
        raise PayloadError(f"Xero answered bill {bill_id} without a Date")
    contact = raw.get("Contact") if isinstance(raw.get("Contact"), Mapping) else {}
    assert isinstance(contact, Mapping)
    lines = tuple(_line(item) for item in raw.get("LineItems") or [] if isinstance(item, Mapping))
    total = money(raw.get("Total"))
    status = str(raw.get("Status") or "")
    return VendorBill(
        sink=SINK,
        bill_id=bill_id,
        vendor=str(contact.get("Name") or ""),
        vendor_id=str(contact.get("ContactID") or ""),
        number=str(raw.get("InvoiceNumber") or bill_id),
        bill_date=bill_date,
        due_date=_day(raw, "DueDate"),
        lines=lines,
        total=total if total is not None else sum((line.amount for line in lines), Decimal(0)),
        currency=str(raw.get("CurrencyCode") or "USD"),
        status=status,
        updated_at=wire_date(raw.get("UpdatedDateUTC")) or datetime(1970, 1, 1, tzinfo=UTC),
        deleted=status in GONE,
    )


def _line(item: Mapping[str, Any]) -> BillLine:
    quantity = money(item.get("Quantity"))
    unit = money(item.get("UnitAmount"))
    amount = money(item.get("LineAmount"))
    if amount is None:
        amount = (quantity or Decimal(1)) * (unit or Decimal(0))
    refs: dict[str, str] = {}
    if item.get("ItemCode"):
        refs[BILL_REF_ITEM] = str(item["ItemCode"])
    if item.get("AccountCode"):
        refs[BILL_REF_ACCOUNT] = str(item["AccountCode"])
    for tracking in item.get("Tracking") or []:
        if isinstance(tracking, Mapping) and tracking.get("Name") and tracking.get("Option"):
            refs[BILL_REF_TRACKING + str(tracking["Name"])] = str(tracking["Option"])
    # Xero: every line has a Quantity (1 when left out). A line of one unit without an item is read
    # as an amount (a lump sum, turned into hours at the agreed rate); any other quantity is hours.
    # A one-hour line at the agreed rate gives the same hours either way.
    timed = quantity is not None and (quantity != 1 or BILL_REF_ITEM in refs)
    return BillLine(
        str(item.get("Description") or ""),
        "time" if timed else "amount",
        amount,
        quantity if timed else None,
        unit,
        tuple(refs.items()),
    )
