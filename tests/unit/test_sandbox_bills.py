"""Contractors' bills in the QuickBooks and Xero emulators: seeded, queried as the vendors allow, edited, deleted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from connectors.sandbox.quickbooks import QuickBooksSandbox
from connectors.sandbox.xero import XeroSandbox

OCT_31 = date(2026, 10, 31)


@pytest.fixture
def qbo() -> Iterator[QuickBooksSandbox]:
    with QuickBooksSandbox(
        vendors=["Zoë Consulting"],
        customers=["Northwind"],
        items=["Consulting hours"],
        classes=["Web"],
        departments=["Delivery"],
    ) as running:
        yield running


def query(qbo: QuickBooksSandbox, statement: str) -> httpx.Response:
    return httpx.get(
        f"{qbo.server.root_url}/v3/company/{qbo.realm_id}/query",
        params={"query": statement},
        headers={"Authorization": f"Bearer {qbo.token}", "Accept": "application/json"},
    )


def test_quickbooks_bills_are_queried_by_date_and_vendor_and_paged(qbo: QuickBooksSandbox) -> None:
    line = {
        "description": "WEB",
        "item": "Consulting hours",
        "qty": "10",
        "unit_price": "75",
        "class_": "Web",
        "customer": "Northwind",
    }
    ids = [qbo.add_bill("Zoë Consulting", OCT_31, [line], department="Delivery", doc_number=f"Z-{n}") for n in range(3)]
    qbo.add_bill("Zoë Consulting", date(2026, 11, 1), [{"amount": "5"}])
    answer = query(
        qbo, "SELECT * FROM Bill WHERE TxnDate >= '2026-10-01' AND TxnDate <= '2026-10-31' STARTPOSITION 2 MAXRESULTS 1"
    )
    assert answer.status_code == 200
    (bill,) = answer.json()["QueryResponse"]["Bill"]
    assert bill["Id"] == ids[1] and bill["VendorRef"] == {
        "value": qbo.id_of("Vendor", "Zoë Consulting"),
        "name": "Zoë Consulting",
    }
    detail = bill["Line"][0]["ItemBasedExpenseLineDetail"]
    assert (detail["Qty"], detail["UnitPrice"], detail["ClassRef"]["name"]) == (10.0, 75.0, "Web")
    assert bill["TotalAmt"] == 750.0 and bill["DepartmentRef"]["name"] == "Delivery"
    vendor = qbo.id_of("Vendor", "Zoë Consulting")
    statement = f"SELECT * FROM Bill WHERE VendorRef = '{vendor}'"  # noqa: S608  (QuickBooks' query language, not SQL)
    assert len(query(qbo, statement).json()["QueryResponse"]["Bill"]) == 4


def test_quickbooks_refuses_a_bill_property_it_cannot_filter_on(qbo: QuickBooksSandbox) -> None:
    answer = query(qbo, "SELECT * FROM Bill WHERE TotalAmt > '10'")
    assert answer.status_code == 400 and "not queryable" in answer.text


def test_quickbooks_bill_edit_bumps_the_sync_token_and_delete_removes_it(qbo: QuickBooksSandbox) -> None:
    bill_id = qbo.add_bill("Zoë Consulting", OCT_31, [{"amount": "100"}])
    qbo.edit_bill(bill_id, lines=[{"amount": "120.50"}])
    (bill,) = qbo.bills()
    assert (bill["SyncToken"], bill["TotalAmt"]) == ("1", 120.5)
    qbo.delete_bill(bill_id)
    assert "Bill" not in query(qbo, "SELECT * FROM Bill").json()["QueryResponse"]


@pytest.fixture
def xero() -> Iterator[XeroSandbox]:
    with XeroSandbox(contacts=["Zoë"], accounts=["200"], tracking={"Cost center": ["CC-100"]}) as running:
        yield running


def invoices(xero: XeroSandbox, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {xero.token}", "Xero-Tenant-Id": xero.tenant_id}
    since = params.pop("since", None)
    if since is not None:
        headers["If-Modified-Since"] = since
    return httpx.get(f"{xero.accounting_url}/Invoices", params=params, headers=headers)


def test_xero_bills_are_filtered_by_where_and_if_modified_since(xero: XeroSandbox) -> None:
    line = {
        "description": "WEB",
        "quantity": "10",
        "unit_amount": "75",
        "account": "200",
        "tracking": {"Cost center": "CC-100"},
    }
    october = xero.add_bill("Zoë", OCT_31, [line], number="Z-1")
    xero.add_bill("Zoë", date(2026, 11, 1), [line], number="Z-2")
    where = 'Type=="ACCPAY" AND Date>=DateTime(2026,10,01) AND Date<=DateTime(2026,10,31)'
    body = invoices(xero, where=where, page="1").json()
    assert [i["InvoiceNumber"] for i in body["Invoices"]] == ["Z-1"]
    item = body["Invoices"][0]["LineItems"][0]
    assert (Decimal(str(item["Quantity"])), Decimal(str(item["LineAmount"]))) == (Decimal(10), Decimal(750))
    assert body["Invoices"][0]["Date"].startswith("/Date(")
    later = (datetime.now(UTC) + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert invoices(xero, where=where, page="1", since=later).json()["Invoices"] == []
    earlier = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(invoices(xero, where=where, page="1", since=earlier).json()["Invoices"]) == 1
    xero.void_bill(october)
    (voided,) = invoices(xero, where=where, page="1", since=earlier).json()["Invoices"]
    assert voided["Status"] == "VOIDED"  # Xero keeps listing a voided bill, with its status


def test_xero_refuses_a_where_clause_it_cannot_read(xero: XeroSandbox) -> None:
    answer = invoices(xero, where='Total>100 OR Type=="ACCPAY"')
    assert answer.status_code == 400 and "where" in answer.text


def test_xero_bill_edit_changes_the_lines(xero: XeroSandbox) -> None:
    bill = xero.add_bill("Zoë", OCT_31, [{"quantity": "2", "unit_amount": "75", "account": "200"}])
    xero.edit_bill(bill, lines=[{"quantity": "3", "unit_amount": "75", "account": "200"}])
    (stored,) = xero.invoices()
    assert stored["Total"] == Decimal("225.00")
    with pytest.raises(ValueError, match="Account code"):
        xero.add_bill("Zoë", OCT_31, [{"quantity": "1", "unit_amount": "1", "account": "999"}])
