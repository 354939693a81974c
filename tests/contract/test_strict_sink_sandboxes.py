"""The sink emulators refuse what the real services refuse, and the sinks keep within it (OR, concurrency, paging)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.delivery import Op
from connectors.sandbox.quickbooks import ENTITY_GET, QUERY, QUERY_POST, QuickBooksSandbox
from connectors.sandbox.xero import PROJECTS_LIST, TIME_CREATE, XeroSandbox
from connectors.xero import XeroConfig, XeroSink
from tests.fakes import no_sleep

from .test_sink_sandboxes import fast_limiter, line, qbo_sink, xero_sink, xline

# --------------------------------------------------------------------------- QuickBooks


@pytest.fixture
def qbo() -> Iterator[QuickBooksSandbox]:
    with QuickBooksSandbox(
        vendors=["Zoë Müller", "Ann O'Brien"], customers=["Acme Corp"], items=["Consulting"], classes=["CC-100"]
    ) as sandbox:
        yield sandbox


def _auth(sandbox: QuickBooksSandbox) -> dict[str, str]:
    return {"Authorization": f"Bearer {sandbox.token}"}


def test_qbo_sandbox_refuses_or_instead_of_using_the_first_value(qbo: QuickBooksSandbox) -> None:
    url = f"{qbo.base_url}/query"
    with httpx.Client(headers=_auth(qbo)) as client:
        either = client.get(
            url,
            params={"query": "SELECT * FROM Vendor WHERE DisplayName = 'Zoë Müller' OR DisplayName = 'Ann O\\'Brien'"},
        )
        lower = client.get(url, params={"query": "select * from Vendor where DisplayName = 'x' or Id = '1'"})
        quoted = client.get(url, params={"query": "SELECT * FROM Vendor WHERE DisplayName = 'Salt OR Pepper'"})
        listed = client.get(
            url, params={"query": "SELECT * FROM Vendor WHERE DisplayName IN ('Zoë Müller', 'Ann O\\'Brien')"}
        )
    assert either.status_code == lower.status_code == 400
    assert either.json()["Fault"]["Error"][0]["code"] == "4000" and "OR" in either.json()["Fault"]["Error"][0]["Detail"]
    # OR inside a quoted name is a name, and IN is how a query asks for several values.
    assert quoted.status_code == 200 and "Vendor" not in quoted.json()["QueryResponse"]
    assert len(listed.json()["QueryResponse"]["Vendor"]) == 2


def test_qbo_sandbox_accepts_a_posted_query_as_python_quickbooks_sends_it(qbo: QuickBooksSandbox) -> None:
    url = f"{qbo.base_url}/query"
    statement = "SELECT * FROM Customer WHERE DisplayName = 'Acme Corp'"
    with httpx.Client(headers=_auth(qbo)) as client:
        posted = client.post(url, content=statement.encode(), headers={"Content-Type": "application/text"})
        as_json = client.post(url, json={"query": statement})
        got = client.get(url, params={"query": statement})
    assert posted.status_code == 200 and posted.json()["QueryResponse"] == got.json()["QueryResponse"]
    assert posted.json()["QueryResponse"]["Customer"][0]["DisplayName"] == "Acme Corp"
    assert as_json.status_code == 415
    assert qbo.call_count(QUERY_POST) == 2 and qbo.call_count(QUERY) == 1


def test_qbo_sandbox_reads_the_named_lists_by_id(qbo: QuickBooksSandbox) -> None:
    vendor, item = qbo.id_of("Vendor", "Ann O'Brien"), qbo.id_of("Item", "Consulting")
    with httpx.Client(headers=_auth(qbo)) as client:
        got_vendor = client.get(f"{qbo.base_url}/vendor/{vendor}")
        got_item = client.get(f"{qbo.base_url}/item/{item}")
        got_class = client.get(f"{qbo.base_url}/class/{qbo.id_of('Class', 'CC-100')}")
        missing = client.get(f"{qbo.base_url}/customer/999999")
        unknown = client.get(f"{qbo.base_url}/invoice/1")
    assert got_vendor.json()["Vendor"]["DisplayName"] == "Ann O'Brien" and got_vendor.json()["Vendor"]["Id"] == vendor
    assert got_item.json()["Item"]["Name"] == "Consulting" and got_class.json()["Class"]["Name"] == "CC-100"
    assert missing.status_code == 400 and missing.json()["Fault"]["Error"][0]["code"] == "610"
    assert unknown.status_code == 404
    assert qbo.call_count(ENTITY_GET) == 4


class _Held(httpx.BaseTransport):
    """Holds the first ``n`` requests until ``n`` are in flight together, and records the peak in flight."""

    def __init__(self, n: int) -> None:
        self._inner = httpx.HTTPTransport()
        self._barrier = threading.Barrier(n, timeout=10)
        self._held = n
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            hold = self._held > 0
            self._held -= 1
        try:
            if hold:
                self._barrier.wait()
            response = self._inner.handle_request(request)
            response.read()
            return response
        finally:
            with self._lock:
                self.in_flight -= 1


def test_qbo_sandbox_refuses_an_eleventh_request_in_flight(qbo: QuickBooksSandbox) -> None:
    # Ten readers held together inside the emulator's cap, then an eleventh one: refused with 429.
    release = threading.Event()
    entered = threading.Semaphore(0)
    real = qbo.server._handlers[ENTITY_GET]  # the test holds the handler to keep ten requests in flight

    def slow(request: Any) -> Any:
        entered.release()
        release.wait(10)
        return real(request)

    qbo.server._handlers[ENTITY_GET] = slow
    url = f"{qbo.base_url}/vendor/{qbo.id_of('Vendor', 'Zoë Müller')}"
    answers: list[int] = []
    with httpx.Client(headers=_auth(qbo), limits=httpx.Limits(max_connections=20)) as client:
        threads = [threading.Thread(target=lambda: answers.append(client.get(url).status_code)) for _ in range(10)]
        for thread in threads:
            thread.start()
        for _ in range(10):
            assert entered.acquire(timeout=10)
        eleventh = client.get(url)
        release.set()
        for thread in threads:
            thread.join()
    assert sorted(answers) == [200] * 10
    assert eleventh.status_code == 429 and eleventh.json()["Fault"]["type"] == "ThrottleExceeded"


def test_qbo_sink_sends_no_or_and_keeps_within_the_concurrency_cap(qbo: QuickBooksSandbox) -> None:
    ops = [Op.for_line("create", line(i, payee="Ann O'Brien" if i % 2 else "Zoë Müller")) for i in range(12)]
    with qbo_sink(qbo) as sink:
        receipts = list(sink.push(ops))
    assert all(r.status == "ok" for r in receipts)
    assert len(qbo.time_activities()) == 12


# --------------------------------------------------------------------------- Xero


@pytest.fixture
def xero() -> Iterator[XeroSandbox]:
    with XeroSandbox(
        projects={"Website": ["Design", "Build"], "Shop": ["Build"]},
        users=["Zoë Müller", "Ann O'Brien"],
        contacts=["Zoë Müller", "Ann O'Brien"],
        accounts=["400"],
        tracking={"Cost Center": ["CC-100", "CC-200"]},
        rate_limit_per_minute=None,
        day_limit=None,
    ) as sandbox:
        yield sandbox


def _xero_headers(sandbox: XeroSandbox) -> dict[str, str]:
    return {"Authorization": f"Bearer {sandbox.token}", "Xero-Tenant-Id": sandbox.tenant_id}


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"page": "0"}, "page"),
        ({"page": "abc"}, "page"),
        ({"pageSize": "0"}, "pageSize"),
        ({"pageSize": "501"}, "pageSize"),
        ({"pageSize": "ten"}, "pageSize"),
    ],
)
def test_xero_projects_refuses_bad_paging_with_400_naming_it(
    xero: XeroSandbox, params: dict[str, str], named: str
) -> None:
    with httpx.Client(headers=_xero_headers(xero)) as client:
        answer = client.get(f"{xero.projects_url}/Projects", params=params)
        users = client.get(f"{xero.projects_url}/ProjectsUsers", params=params)
    assert answer.status_code == users.status_code == 400
    assert named in answer.json()["modelState"] and named in answer.json()["message"]


def test_xero_accounting_refuses_a_bad_invoice_page_with_400(xero: XeroSandbox) -> None:
    with httpx.Client(headers=_xero_headers(xero)) as client:
        answer = client.get(f"{xero.accounting_url}/Invoices", params={"page": "-1"})
    assert answer.status_code == 400 and answer.json()["Type"] == "ValidationException"


def test_xero_projects_filters_by_project_ids(xero: XeroSandbox) -> None:
    website, shop = xero.project_id("Website"), xero.project_id("Shop")
    with httpx.Client(headers=_xero_headers(xero)) as client:
        one = client.get(f"{xero.projects_url}/Projects", params={"projectIds": shop}).json()
        both = client.get(f"{xero.projects_url}/Projects", params={"projectIds": f"{website},{shop}"}).json()
        bad = client.get(f"{xero.projects_url}/Projects", params={"projectIds": "not-a-uuid"})
    assert [p["name"] for p in one["items"]] == ["Shop"] and one["pagination"]["itemCount"] == 1
    assert {p["name"] for p in both["items"]} == {"Website", "Shop"}
    assert bad.status_code == 400 and "projectIds" in bad.json()["modelState"]


def test_xero_invoices_carry_ms_dates_and_totals(xero: XeroSandbox) -> None:
    lines = [xline(0, seconds=5400), xline(1, seconds=1800), xline(2, payee="Ann O'Brien", seconds=3600)]
    with xero_sink(xero, "bills") as sink:
        receipts = list(sink.push([Op.for_line("create", x) for x in lines]))
    assert all(r.status == "ok" for r in receipts)
    with httpx.Client(headers=_xero_headers(xero)) as client:
        listed = client.get(f"{xero.accounting_url}/Invoices", params={"page": "1"}).json()["Invoices"]
    zoe = next(b for b in listed if len(b["LineItems"]) == 2)
    # Nov 30 2026 00:00 UTC and its due date, as Microsoft JSON dates with ISO twins.
    assert zoe["Date"] == "/Date(1795996800000+0000)/" and zoe["DateString"] == "2026-11-30T00:00:00"
    assert zoe["DueDate"].startswith("/Date(") and zoe["DueDateString"].endswith("T00:00:00")
    assert zoe["UpdatedDateUTC"].startswith("/Date(") and zoe["UpdatedDateUTC"].endswith("+0000)/")
    amounts = [Decimal(str(li["LineAmount"])) for li in zoe["LineItems"]]
    assert Decimal(str(zoe["SubTotal"])) == sum(amounts) > 0
    assert Decimal(str(zoe["TotalTax"])) == 0 and Decimal(str(zoe["Total"])) == sum(amounts)
    assert Decimal(str(zoe["AmountDue"])) == Decimal(str(zoe["Total"])) and Decimal(str(zoe["AmountPaid"])) == 0
    # What was read back is accepted back: an edit sends the /Date()/ dates Xero gave.
    with httpx.Client(headers=_xero_headers(xero)) as client:
        edited = client.post(
            f"{xero.accounting_url}/Invoices",
            json={"Invoices": [{**zoe, "LineItems": zoe["LineItems"][:1]}]},
        )
    assert edited.status_code == 200 and edited.json()["Invoices"][0]["DateString"] == "2026-11-30T00:00:00"


def test_xero_sinks_of_one_tenant_never_exceed_five_calls_in_flight(xero: XeroSandbox) -> None:
    # Eight sinks of the same organisation push at once (parallel worker jobs, say). The first five
    # requests are held until five are in flight together, so the cap is reached for certain; a
    # sixth in flight would show in the peak and as a 429 "concurrent" from the emulator.
    held = _Held(5)
    receipts: list[Any] = []
    errors: list[BaseException] = []
    settings = XeroConfig(
        tenant_id=xero.tenant_id,
        mode="projects",
        projects_base_url=xero.projects_url,
        accounting_base_url=xero.accounting_url,
        access_token=SecretStr(xero.token),
    )
    sinks = [XeroSink(settings, transport=held, limiter=fast_limiter(), sleep=no_sleep) for _ in range(8)]

    def push(index: int) -> None:
        try:
            ops = [Op.for_line("create", xline(index * 10 + i, work_date=date(2026, 11, 2 + i))) for i in range(3)]
            receipts.extend(sinks[index].push(ops))
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    throttled = sum(sink.client.stats.as_dict()["throttled"] for sink in sinks)
    for sink in sinks:
        sink.close()
    assert not errors
    assert held.peak == 5
    assert throttled == 0
    assert len(receipts) == 24 and all(r.status == "ok" for r in receipts)
    assert len(xero.time_entries()) == 24
    assert xero.call_count(TIME_CREATE) == 24 and xero.call_count(PROJECTS_LIST) >= 1
