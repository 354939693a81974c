"""The bill readers against mocked HTTP: paging, a bill edited after a check, deleted bills, our own bills skipped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.bills import BILL_REF_CLASS, BILL_REF_CUSTOMER, BILL_REF_DEPARTMENT, BILL_REF_TRACKING, BillReader
from connectors.delivery import marker
from connectors.quickbooks import QuickBooksConfig, QuickBooksSink
from connectors.xero import XeroConfig, XeroSink
from tests.fakes import FakeClock

QBO = "https://qbo.test"
REALM = "4620816365000000001"
QBO_API = f"{QBO}/v3/company/{REALM}"
XERO = "https://xero.test/api.xro/2.0"
TENANT = "b2d1a7a4-5d3e-4c55-9a43-7c2f0e1d9a10"
KEY = "0b6f1f6e-7d0c-5a8e-9a61-3c1d2e4f5a61"


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        yield router


def quickbooks(clock: FakeClock) -> QuickBooksSink:
    config = QuickBooksConfig(realm_id=REALM, base_url=QBO, access_token=SecretStr("qbo_unit_token"))
    return QuickBooksSink(
        config,
        limiter=RateLimiter(1e6, clock=clock),
        batch_limiter=RateLimiter(1e6, clock=clock),
        sleep=clock.sleep,
    )


def xero(clock: FakeClock) -> XeroSink:
    config = XeroConfig(
        tenant_id=TENANT,
        mode="bills",
        projects_base_url="https://xero.test/projects.xro/2.0",
        accounting_base_url=XERO,
        access_token=SecretStr("xero_unit_token"),
    )
    return XeroSink(config, limiter=RateLimiter(1e6, clock=clock), sleep=clock.sleep)


def qbo_bill(ident: int, *, qty: float = 10.0, edits: int = 0, description: str = "WEB October") -> dict[str, Any]:
    return {
        "Id": str(ident),
        "SyncToken": str(edits),
        "MetaData": {"CreateTime": "2026-11-01T10:00:00-08:00", "LastUpdatedTime": "2026-11-02T10:00:00-08:00"},
        "DocNumber": f"Z-{ident}",
        "TxnDate": "2026-10-31",
        "DueDate": "2026-11-30",
        "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
        "VendorRef": {"value": "56", "name": "Zoë Müller Consulting"},
        "DepartmentRef": {"value": "1", "name": "Delivery"},
        "Line": [
            {
                "Id": "1",
                "LineNum": 1,
                "Description": description,
                "Amount": qty * 75,
                "DetailType": "ItemBasedExpenseLineDetail",
                "ItemBasedExpenseLineDetail": {
                    "ItemRef": {"value": "9", "name": "Consulting hours"},
                    "ClassRef": {"value": "5000000001", "name": "Web"},
                    "CustomerRef": {"value": "3", "name": "Northwind"},
                    "Qty": qty,
                    "UnitPrice": 75,
                },
            },
            {
                "Id": "2",
                "LineNum": 2,
                "Description": "Travel",
                "Amount": 120.5,
                "DetailType": "AccountBasedExpenseLineDetail",
                "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "60", "name": "Contractors"}},
            },
            {"Amount": qty * 75 + 120.5, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
        ],
        "TotalAmt": qty * 75 + 120.5,
        "Balance": qty * 75 + 120.5,
    }


def statement_of(request: httpx.Request) -> str:
    return parse_qs(urlsplit(str(request.url)).query)["query"][0]


def test_quickbooks_pages_by_startposition_and_reads_lines_and_refs(mock: respx.MockRouter) -> None:
    statements: list[str] = []
    first = [qbo_bill(n) for n in range(1, 1001)]

    def answer(request: httpx.Request) -> httpx.Response:
        statement = statement_of(request)
        statements.append(statement)
        start = int(re.search(r"STARTPOSITION (\d+)", statement).group(1))  # type: ignore[union-attr]
        rows = first if start == 1 else [qbo_bill(1001)]
        return httpx.Response(200, json={"QueryResponse": {"Bill": rows, "startPosition": start}})

    mock.get(f"{QBO_API}/query").mock(side_effect=answer)
    with quickbooks(FakeClock()) as sink:
        assert isinstance(sink, BillReader)
        bills = list(sink.bills(date(2026, 10, 1), date(2026, 10, 31)))
    assert len(bills) == 1001
    where = "SELECT * FROM Bill WHERE TxnDate >= '2026-10-01' AND TxnDate <= '2026-10-31'"
    assert statements == [f"{where} STARTPOSITION 1 MAXRESULTS 1000", f"{where} STARTPOSITION 1001 MAXRESULTS 1000"]
    bill = bills[0]
    assert (bill.sink, bill.bill_id, bill.vendor, bill.vendor_id, bill.number) == (
        "quickbooks", "1", "Zoë Müller Consulting", "56", "Z-1"
    )  # fmt: skip
    assert (bill.bill_date, bill.due_date, bill.currency, bill.total) == (
        date(2026, 10, 31), date(2026, 11, 30), "USD", Decimal("870.5")
    )  # fmt: skip
    assert bill.updated_at == datetime(2026, 11, 2, 18, 0, tzinfo=UTC)
    timed, travel = bill.lines  # the sub-total line carries no charge of its own
    assert (timed.kind, timed.quantity, timed.unit_price, timed.amount) == (
        "time",
        Decimal("10.0"),
        Decimal(75),
        Decimal("750.0"),
    )
    assert timed.ref(BILL_REF_CLASS) == "Web" and timed.ref(BILL_REF_CUSTOMER) == "Northwind"
    assert timed.ref(BILL_REF_DEPARTMENT) == "Delivery"
    assert (travel.kind, travel.quantity, travel.amount) == ("amount", None, Decimal("120.5"))


def test_quickbooks_reads_a_bill_edited_after_a_check_and_drops_a_deleted_one(mock: respx.MockRouter) -> None:
    answers = iter(
        [
            [qbo_bill(1), qbo_bill(2)],
            [qbo_bill(1, qty=12.0, edits=1)],  # bill 1 edited in QuickBooks, bill 2 deleted
        ]
    )
    mock.get(f"{QBO_API}/query").mock(
        side_effect=lambda request: httpx.Response(200, json={"QueryResponse": {"Bill": next(answers)}})
    )
    with quickbooks(FakeClock()) as sink:
        before = list(sink.bills(date(2026, 10, 1), date(2026, 10, 31)))
        after = list(sink.bills(date(2026, 10, 1), date(2026, 10, 31)))
    assert [b.bill_id for b in before] == ["1", "2"]
    assert [b.bill_id for b in after] == ["1"]
    assert after[0].lines[0].quantity == Decimal("12.0") and after[0].total == Decimal("1020.5")


def test_quickbooks_skips_bills_hourbridge_wrote_and_bills_outside_the_range(mock: respx.MockRouter) -> None:
    ours = qbo_bill(3, description=f"{marker(KEY)} WEB October")
    stray = {**qbo_bill(4), "TxnDate": "2026-11-01"}
    mock.get(f"{QBO_API}/query").mock(
        return_value=httpx.Response(200, json={"QueryResponse": {"Bill": [qbo_bill(1), ours, stray, qbo_bill(1)]}})
    )
    with quickbooks(FakeClock()) as sink:
        assert [b.bill_id for b in sink.bills(date(2026, 10, 1), date(2026, 10, 31))] == ["1"]


def xero_bill(
    number: int, *, status: str = "AUTHORISED", quantity: str = "10.0000", description: str = "WEB"
) -> dict[str, Any]:
    return {
        "Type": "ACCPAY",
        "InvoiceID": f"00000000-0000-0000-0000-{number:012d}",
        "InvoiceNumber": f"B-{number}",
        "Contact": {"ContactID": "30b4312b-6c70-53fc-87d9-27330d126d54", "Name": "Zoë Müller"},
        "Date": "/Date(1793404800000+0000)/",
        "DateString": "2026-10-31T00:00:00",
        "DueDate": "/Date(1795996800000+0000)/",
        "Status": status,
        "CurrencyCode": "USD",
        "UpdatedDateUTC": "/Date(1793620800000+0000)/",
        "Total": 750.0,
        "LineItems": [
            {
                "LineItemID": "1",
                "Description": description,
                "Quantity": float(quantity),
                "UnitAmount": 75.0,
                "LineAmount": float(quantity) * 75,
                "AccountCode": "200",
                "Tracking": [{"Name": "Cost center", "Option": "CC-100"}],
            },
            {"LineItemID": "2", "Description": "Lump sum", "Quantity": 1.0, "UnitAmount": 150.0, "LineAmount": 150.0},
        ],
    }


def test_xero_pages_by_100_with_a_date_filter_and_reads_ms_dates(mock: respx.MockRouter) -> None:
    seen: list[dict[str, list[str]]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        query = parse_qs(urlsplit(str(request.url)).query)
        seen.append(query)
        assert request.headers["Xero-Tenant-Id"] == TENANT
        assert "If-Modified-Since" not in request.headers
        page = int(query["page"][0])
        rows = [xero_bill(n) for n in range(1, 101)] if page == 1 else [xero_bill(101)]
        return httpx.Response(200, json={"Invoices": rows})

    mock.get(f"{XERO}/Invoices").mock(side_effect=answer)
    with xero(FakeClock()) as sink:
        bills = list(sink.bills(date(2026, 10, 1), date(2026, 10, 31)))
    assert len(bills) == 101
    assert [q["page"] for q in seen] == [["1"], ["2"]]
    assert seen[0]["where"] == ['Type=="ACCPAY" AND Date>=DateTime(2026,10,01) AND Date<=DateTime(2026,10,31)']
    bill = bills[0]
    assert (bill.sink, bill.number, bill.vendor, bill.bill_date, bill.due_date) == (
        "xero", "B-1", "Zoë Müller", date(2026, 10, 31), date(2026, 11, 30)
    )  # fmt: skip
    assert bill.updated_at == datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    timed, lump = bill.lines
    assert (timed.kind, timed.quantity, timed.ref(BILL_REF_TRACKING + "Cost center")) == (
        "time",
        Decimal("10.0"),
        "CC-100",
    )
    # One unit without an item is read as an amount, turned into hours at the agreed rate by the check.
    assert (lump.kind, lump.quantity, lump.amount) == ("amount", None, Decimal("150.0"))


def test_xero_reads_an_edited_bill_marks_voided_and_deleted_ones_and_skips_its_own_drafts(
    mock: respx.MockRouter,
) -> None:
    answers = iter(
        [
            [xero_bill(1), xero_bill(2), xero_bill(3, status="DRAFT", description=f"{marker(KEY)} 2026-10-03 WEB")],
            [xero_bill(1, quantity="12.5000"), xero_bill(2, status="VOIDED"), xero_bill(4, status="DELETED")],
        ]
    )
    mock.get(f"{XERO}/Invoices").mock(side_effect=lambda request: httpx.Response(200, json={"Invoices": next(answers)}))
    with xero(FakeClock()) as sink:
        before = list(sink.bills(date(2026, 10, 1), date(2026, 10, 31)))
        after = list(sink.bills(date(2026, 10, 1), date(2026, 10, 31)))
    assert [(b.number, b.deleted) for b in before] == [("B-1", False), ("B-2", False)]
    assert [(b.number, b.deleted) for b in after] == [("B-1", False), ("B-2", True), ("B-4", True)]
    assert after[0].lines[0].quantity == Decimal("12.5")


def test_xero_sends_if_modified_since_and_a_304_means_nothing_changed(mock: respx.MockRouter) -> None:
    from connectors.xero.bills import XeroBills

    route = mock.get(f"{XERO}/Invoices").mock(return_value=httpx.Response(304))
    with xero(FakeClock()) as sink:
        since = datetime(2026, 11, 2, 9, 30, 15, 123, tzinfo=UTC)
        assert list(XeroBills(sink.client).bills(date(2026, 10, 1), date(2026, 10, 31), modified_since=since)) == []
    assert route.calls.last.request.headers["If-Modified-Since"] == "2026-11-02T09:30:15Z"
