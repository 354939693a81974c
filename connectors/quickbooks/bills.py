"""QuickBooksBills: contractors' Bills read back from one company, read-only and paged, as neutral VendorBills."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.bills import (
    BILL_REF_CLASS,
    BILL_REF_CUSTOMER,
    BILL_REF_DEPARTMENT,
    BILL_REF_ITEM,
    BillLine,
    VendorBill,
    written_by_hourbridge,
)
from connectors.errors import PayloadError
from connectors.quickbooks.client import QuickBooksClient, quote

SINK = "quickbooks"
ENTITY = "Bill"
# QuickBooks: a bill's lines are expense lines of one of two kinds (Finance.xsd Line, DetailType).
ITEM_LINE = "ItemBasedExpenseLineDetail"
ACCOUNT_LINE = "AccountBasedExpenseLineDetail"


class QuickBooksBills:
    """Reads Bills dated in a range: ``SELECT * FROM Bill WHERE TxnDate ...``, 1000 a page by STARTPOSITION.

    Uses the sink's client, so its calls count against the same per-realm limiters and in-flight
    cap as the writes. QuickBooks queries never return deleted transactions: a bill deleted in
    QuickBooks is simply no longer read.
    """

    def __init__(self, client: QuickBooksClient) -> None:
        self._client = client

    def bills(self, start: date, end: date, *, vendor_id: str | None = None) -> Iterator[VendorBill]:
        """Every Bill with ``start <= TxnDate <= end`` (of one vendor when ``vendor_id`` is given).

        Bills hourbridge wrote (our ``[hb:<key>]`` marker in the memo or a line) are left out. A bill
        seen twice, when a page boundary shifts under the query, is yielded once.
        """
        if end < start:
            return
        where = f"TxnDate >= {quote(start.isoformat())} AND TxnDate <= {quote(end.isoformat())}"
        if vendor_id is not None:
            where += f" AND VendorRef = {quote(vendor_id)}"
        seen: set[str] = set()
        for row in self._client.query_all(ENTITY, where):
            bill = parse_bill(row)
            if bill.bill_id in seen or not start <= bill.bill_date <= end:
                continue
            seen.add(bill.bill_id)
            if _ours(row):
                continue
            yield bill


def _ours(row: Mapping[str, Any]) -> bool:
    texts = [row.get("PrivateNote"), row.get("DocNumber")]
    texts += [line.get("Description") for line in row.get("Line") or [] if isinstance(line, Mapping)]
    return written_by_hourbridge(*(t if isinstance(t, str) else None for t in texts))


def _decimal(value: object, what: str) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise PayloadError(f"QuickBooks answered a Bill whose {what} is not a number") from None
    return number if number.is_finite() else None


def _name(ref: object) -> str | None:
    if isinstance(ref, Mapping):
        name = ref.get("name")
        return str(name) if name else None
    return None


def parse_bill(row: Mapping[str, Any]) -> VendorBill:
    """One QuickBooks Bill as a VendorBill (Finance.xsd Bill: PurchaseByVendor with DueDate and Balance)."""
    bill_id = str(row.get("Id") or "")
    if not bill_id:
        raise PayloadError("QuickBooks answered a Bill without an Id")
    try:
        bill_date = date.fromisoformat(str(row.get("TxnDate")))
    except ValueError:
        raise PayloadError(f"QuickBooks answered Bill {bill_id} without a TxnDate") from None
    due: date | None
    try:
        due = date.fromisoformat(str(row["DueDate"])) if row.get("DueDate") else None
    except ValueError:
        due = None
    vendor = row.get("VendorRef") if isinstance(row.get("VendorRef"), Mapping) else {}
    assert isinstance(vendor, Mapping)
    department = _name(row.get("DepartmentRef"))
    lines: list[BillLine] = []
    for raw in row.get("Line") or []:
        if not isinstance(raw, Mapping):
            continue
        line = _line(raw, department, bill_id)
        if line is not None:
            lines.append(line)
    meta = row.get("MetaData") if isinstance(row.get("MetaData"), Mapping) else {}
    assert isinstance(meta, Mapping)
    updated = _instant(meta.get("LastUpdatedTime")) or _instant(meta.get("CreateTime"))
    total = _decimal(row.get("TotalAmt"), "TotalAmt")
    balance = _decimal(row.get("Balance"), "Balance")
    return VendorBill(
        sink=SINK,
        bill_id=bill_id,
        vendor=str(vendor.get("name") or ""),
        vendor_id=str(vendor.get("value") or ""),
        number=str(row.get("DocNumber") or bill_id),
        bill_date=bill_date,
        due_date=due,
        lines=tuple(lines),
        total=total if total is not None else sum((line.amount for line in lines), Decimal(0)),
        currency=_currency_code(row.get("CurrencyRef")) or "USD",
        status="Paid" if balance is not None and balance == 0 and (total or 0) > 0 else "Open",
        updated_at=updated or datetime(1970, 1, 1, tzinfo=UTC),
    )


def _currency_code(ref: object) -> str | None:
    # QuickBooks: CurrencyRef's value is the ISO code ("USD"); its name is the currency's full name.
    if isinstance(ref, Mapping) and isinstance(ref.get("value"), str) and len(ref["value"]) == 3:
        return str(ref["value"]).upper()
    return None


def _line(raw: Mapping[str, Any], department: str | None, bill_id: str) -> BillLine | None:
    kind = raw.get("DetailType")
    amount = _decimal(raw.get("Amount"), f"line Amount (Bill {bill_id})") or Decimal(0)
    description = str(raw.get("Description") or "")
    refs: dict[str, str] = {}
    if department:
        refs[BILL_REF_DEPARTMENT] = department
    if kind == ITEM_LINE:
        detail = raw.get(ITEM_LINE) if isinstance(raw.get(ITEM_LINE), Mapping) else {}
        assert isinstance(detail, Mapping)
        for key, element in (
            (BILL_REF_CLASS, "ClassRef"),
            (BILL_REF_CUSTOMER, "CustomerRef"),
            (BILL_REF_ITEM, "ItemRef"),
        ):
            name = _name(detail.get(element))
            if name:
                refs[key] = name
        quantity = _decimal(detail.get("Qty"), f"line Qty (Bill {bill_id})")
        price = _decimal(detail.get("UnitPrice"), f"line UnitPrice (Bill {bill_id})")
        if quantity is None:
            # An item line without a quantity carries only its amount.
            return BillLine(description, "amount", amount, None, price, tuple(refs.items()))
        return BillLine(description, "time", amount, quantity, price, tuple(refs.items()))
    if kind == ACCOUNT_LINE:
        detail = raw.get(ACCOUNT_LINE) if isinstance(raw.get(ACCOUNT_LINE), Mapping) else {}
        assert isinstance(detail, Mapping)
        for key, element in ((BILL_REF_CLASS, "ClassRef"), (BILL_REF_CUSTOMER, "CustomerRef")):
            name = _name(detail.get(element))
            if name:
                refs[key] = name
        return BillLine(description, "amount", amount, None, None, tuple(refs.items()))
    # Sub-total and description-only lines carry no charge of their own.
    return None


def _instant(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
