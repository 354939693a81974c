"""XeroSink against mocked HTTP: tenant and idempotency headers, name lookups, minutes, bills, quota headers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx
from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.delivery import Holding, Line, Op, idempotency_key
from connectors.errors import ConfigError, DailyLimitError
from connectors.xero import XeroBillsSink, XeroConfig, XeroSink
from connectors.xero.render import BillIds, bill_number, entry_date_utc, render_line_item, written_work_date
from tests.fakes import FakeClock

PROJECTS = "https://projects.xero.test/projects.xro/2.0"
ACCOUNTING = "https://api.xero.test/api.xro/2.0"
TENANT = "0f8a3e1c-2b4d-4c6e-8f0a-1b2c3d4e5f60"
TOKEN = "xero_unit_token_51aa"
PROJECT = "11111111-1111-4111-8111-111111111111"
TASK = "22222222-2222-4222-8222-222222222222"
USER = "33333333-3333-4333-8333-333333333333"
CONTACT_A = "44444444-4444-4444-8444-444444444444"
CONTACT_B = "55555555-5555-4555-8555-555555555555"


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        yield router


def make_sink(clock: FakeClock, **config: Any) -> XeroSink:
    settings = XeroConfig(
        tenant_id=TENANT,
        projects_base_url=PROJECTS,
        accounting_base_url=ACCOUNTING,
        access_token=SecretStr(TOKEN),
        **config,
    )
    return XeroSink(settings, limiter=RateLimiter(60, clock=clock), sleep=clock.sleep)


def line(n: int = 0, *, payee: str = "Zoë Müller", seconds: int = 5400, **extra: Any) -> Line:
    refs = extra.pop("refs", {"xero.project": "Website", "xero.task": "Build", "xero.account": "400"})
    fields: dict[str, Any] = {
        "sink": "xero",
        "line_key": f"agg:{payee}:C{n}:2026-11",
        "version": 1,
        "work_date": date(2026, 11, 3),
        "period_end": date(2026, 11, 30),
        "person": payee,
        "payee": payee,
        "code": f"C{n}",
        "client": "Acme",
        "seconds": seconds,
        "billable": True,
        "hourly_rate": Decimal("80.00"),
        "cost_center": "CC-100",
        "currency": "NZD",
    }
    fields.update(extra)
    return Line.with_refs(refs, **fields)


def page(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"pagination": {"page": 1, "pageSize": 500, "pageCount": 1, "itemCount": len(items)}, "items": items}


def mock_names(mock: respx.MockRouter, *, tasks: bool = True) -> dict[str, respx.Route]:
    routes = {
        "projects": mock.get(f"{PROJECTS}/Projects").respond(json=page([{"projectId": PROJECT, "name": "Website"}])),
        "users": mock.get(f"{PROJECTS}/ProjectsUsers").respond(json=page([{"userId": USER, "name": "Zoë Müller"}])),
    }
    if tasks:
        task_page = page([{"taskId": TASK, "name": "Build"}])
        routes["tasks"] = mock.get(f"{PROJECTS}/Projects/{PROJECT}/Tasks").respond(json=task_page)
    return routes


def test_projects_writes_carry_tenant_and_idempotency_key_and_names_resolve_once(mock: respx.MockRouter) -> None:
    routes = mock_names(mock)
    entry = "66666666-6666-4666-8666-666666666666"
    create = mock.post(f"{PROJECTS}/Projects/{PROJECT}/Time").respond(json={"timeEntryId": entry})
    update = mock.put(f"{PROJECTS}/Projects/{PROJECT}/Time/{entry}").respond(204)
    delete = mock.delete(f"{PROJECTS}/Projects/{PROJECT}/Time/{entry}").respond(404, json={"message": "not found"})
    ops = [Op.for_line("create", line(i)) for i in range(3)]
    ops.append(Op.for_line("update", line(0, version=2, seconds=60), remote_id=f"{PROJECT}/{entry}"))
    ops.append(Op.for_line("delete", line(1, version=3), remote_id=f"{PROJECT}/{entry}"))
    with make_sink(FakeClock()) as sink:
        receipts = list(sink.push(ops))
    assert [r.status for r in receipts] == ["ok"] * 5
    assert receipts[0].remote_id == f"{PROJECT}/{entry}"
    assert all(r.call_count == 1 for r in routes.values())
    writes = [*create.calls, *update.calls, *delete.calls]
    assert [c.request.headers["Idempotency-Key"] for c in writes] == [op.idempotency_key for op in ops]
    assert all(c.request.headers["Xero-Tenant-Id"] == TENANT for c in writes)
    body = json.loads(create.calls[0].request.content)
    assert body["duration"] == 90 and body["userId"] == USER and body["taskId"] == TASK
    assert body["description"].startswith(f"[hb:{ops[0].idempotency_key}]")


@pytest.mark.parametrize(("seconds", "minutes"), [(29, 1), (89, 1), (90, 2), (59_940 * 60, 59_940)])
def test_minutes_are_rounded_half_up_and_kept_in_range(mock: respx.MockRouter, seconds: int, minutes: int) -> None:
    mock_names(mock)
    create = mock.post(f"{PROJECTS}/Projects/{PROJECT}/Time").respond(json={"timeEntryId": "x"})
    with make_sink(FakeClock()) as sink:
        list(sink.push([Op.for_line("create", line(seconds=seconds))]))
    assert json.loads(create.calls[0].request.content)["duration"] == minutes


def test_more_than_59940_minutes_is_refused_not_clamped_or_split() -> None:
    with respx.mock(assert_all_mocked=True), make_sink(FakeClock()) as sink:
        [receipt] = list(sink.push([Op.for_line("create", line(refs={}, seconds=59_941 * 60))]))
    assert receipt.status == "failed" and "names no xero project" in str(receipt.error)
    with make_sink(FakeClock()) as sink, respx.mock(assert_all_called=False) as router:
        mock_names(router)
        [receipt] = list(sink.push([Op.for_line("create", line(seconds=59_941 * 60))]))
    assert receipt.status == "failed" and "per day" in str(receipt.error)


def test_entry_date_is_noon_local_so_the_day_survives_any_offset() -> None:
    from zoneinfo import ZoneInfo

    assert entry_date_utc(date(2026, 11, 3), ZoneInfo("Pacific/Auckland")) == "2026-11-02T23:00:00Z"
    assert entry_date_utc(date(2026, 11, 3), ZoneInfo("America/Los_Angeles")) == "2026-11-03T20:00:00Z"


def test_unknown_project_user_is_a_config_error_naming_them(mock: respx.MockRouter) -> None:
    mock_names(mock, tasks=False)
    with make_sink(FakeClock()) as sink:
        [receipt] = list(sink.push([Op.for_line("create", line(payee="Ghost"))]))
    assert receipt.status == "failed" and "no project user named 'Ghost'" in str(receipt.error)


def bills_mocks(mock: respx.MockRouter) -> tuple[respx.Route, respx.Route]:
    contacts = [{"ContactID": CONTACT_A, "Name": "Zoë Müller"}, {"ContactID": CONTACT_B, "Name": 'Ann "AJ" Lee'}]
    contacts_route = mock.get(f"{ACCOUNTING}/Contacts").respond(json={"Contacts": contacts})
    categories = [{"Name": "Cost Center", "Status": "ACTIVE", "Options": [{"Name": "CC-100", "Status": "ACTIVE"}]}]
    mock.get(f"{ACCOUNTING}/TrackingCategories").respond(json={"TrackingCategories": categories})
    mock.get(f"{ACCOUNTING}/Invoices").respond(json={"Invoices": []})

    def created(request: httpx.Request) -> httpx.Response:
        invoices = json.loads(request.content)["Invoices"]
        for n, invoice in enumerate(invoices):
            invoice["InvoiceID"] = f"77777777-7777-4777-8777-77777777777{n}"
            for m, item in enumerate(invoice["LineItems"]):
                item["LineItemID"] = f"88888888-8888-4888-8888-8888888888{n}{m}"
        return httpx.Response(200, json={"Invoices": invoices})

    put = mock.put(f"{ACCOUNTING}/Invoices").mock(side_effect=created)
    return contacts_route, put


def test_bills_group_lines_per_contractor_in_one_put(mock: respx.MockRouter) -> None:
    contacts, put = bills_mocks(mock)
    ops = [Op.for_line("create", line(i, payee='Ann "AJ" Lee' if i == 2 else "Zoë Müller")) for i in range(3)]
    with make_sink(FakeClock(), mode="bills", tracking_categories=["Cost Center"]) as sink:
        receipts = list(sink.push(ops))
    assert [r.status for r in receipts] == ["ok"] * 3
    assert contacts.call_count == 1 and put.call_count == 1
    where = parse_qs(urlsplit(str(contacts.calls[0].request.url)).query)["where"][0]
    assert where == 'Name=="Ann \\"AJ\\" Lee" OR Name=="Zoë Müller"'
    request = put.calls[0].request
    assert parse_qs(urlsplit(str(request.url)).query) == {"summarizeErrors": ["false"], "unitdp": ["4"]}
    assert request.headers["Idempotency-Key"] and request.headers["Xero-Tenant-Id"] == TENANT
    invoices = json.loads(request.content, parse_float=Decimal)["Invoices"]
    assert sorted(len(i["LineItems"]) for i in invoices) == [1, 2]
    bill = next(i for i in invoices if len(i["LineItems"]) == 2)
    assert (bill["Type"], bill["Status"], bill["Contact"], bill["CurrencyCode"]) == (
        "ACCPAY",
        "DRAFT",
        {"ContactID": CONTACT_A},
        "NZD",
    )
    item = bill["LineItems"][0]
    assert item["Quantity"] == Decimal("1.5000") and item["UnitAmount"] == Decimal("80.00")
    assert item["Tracking"] == [{"Name": "Cost Center", "Option": "CC-100"}] and item["AccountCode"] == "400"


def test_bill_with_unknown_tracking_option_names_the_category(mock: respx.MockRouter) -> None:
    mock.get(f"{ACCOUNTING}/Contacts").respond(json={"Contacts": [{"ContactID": CONTACT_A, "Name": "Zoë Müller"}]})
    mock.get(f"{ACCOUNTING}/TrackingCategories").respond(json={"TrackingCategories": []})
    with make_sink(FakeClock(), mode="bills", tracking_categories=["Cost Center"]) as sink:
        assert isinstance(sink, XeroBillsSink)
        with pytest.raises(ConfigError, match="tracking category 'Cost Center'"):
            sink.bill_ids(line())
        [receipt] = list(sink.push([Op.for_line("create", line())]))
    assert receipt.status == "failed"


def test_quota_headers_pace_the_limiter_and_report_the_day(mock: respx.MockRouter) -> None:
    clock = FakeClock()
    headers = {"X-MinLimit-Remaining": "0", "X-DayLimit-Remaining": "4321"}
    mock.get(f"{PROJECTS}/ProjectsUsers").respond(json=page([]), headers=headers)
    with make_sink(clock) as sink:
        start = clock.now
        sink.check()
        sink.check()
        assert sink.stats()["day_limit_remaining"] == 4321
    assert clock.now - start >= 59.0  # no minute quota left: the second call waited for the window


def test_429_for_the_day_fails_the_ops_without_retrying(mock: respx.MockRouter) -> None:
    mock_names(mock)
    create = mock.post(f"{PROJECTS}/Projects/{PROJECT}/Time").respond(
        429, headers={"Retry-After": "40000", "X-Rate-Limit-Problem": "day"}
    )
    with make_sink(FakeClock()) as sink:
        receipts = list(sink.push([Op.for_line("create", line(i)) for i in range(2)]))
        assert sink.stats()["day_limit_remaining"] == 0
    assert [r.status for r in receipts] == ["failed", "failed"] and "daily" in str(receipts[0].error)
    assert create.call_count == 1


def test_429_for_the_minute_is_retried_after_retry_after(mock: respx.MockRouter) -> None:
    mock_names(mock)
    mock.post(f"{PROJECTS}/Projects/{PROJECT}/Time").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7", "X-Rate-Limit-Problem": "minute"}),
            httpx.Response(200, json={"timeEntryId": "e1"}),
        ]
    )
    clock = FakeClock()
    with make_sink(clock) as sink:
        [receipt] = list(sink.push([Op.for_line("create", line())]))
        assert sink.stats()["throttled"] == 1
    assert receipt.status == "ok"


def test_dropped_answer_after_sending_is_unknown(mock: respx.MockRouter) -> None:
    mock_names(mock)
    mock.post(f"{PROJECTS}/Projects/{PROJECT}/Time").mock(side_effect=httpx.RemoteProtocolError("server hung up"))
    with make_sink(FakeClock()) as sink:
        [receipt] = list(sink.push([Op.for_line("create", line())]))
    assert receipt.status == "unknown"


def test_refused_tenant_raises_a_config_error_naming_the_setting(mock: respx.MockRouter) -> None:
    mock.get(f"{PROJECTS}/ProjectsUsers").respond(
        403, json={"Title": "Forbidden", "Detail": "AuthorizationUnsuccessful"}
    )
    with make_sink(FakeClock()) as sink, pytest.raises(ConfigError, match="HOURBRIDGE_XERO__TENANT_ID"):
        sink.check()


# --------------------------------------------------------------------------- holdings

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))
CLOSED_PROJECT = "99999999-9999-4999-8999-999999999999"


def key_of(x: Line) -> str:
    return idempotency_key(x.sink, x.line_key, x.version)


def test_projects_holdings_list_each_project_over_the_range_in_the_organisation_zone(mock: respx.MockRouter) -> None:
    mock.get(f"{PROJECTS}/Projects", params={"states": "INPROGRESS"}).respond(
        json=page([{"projectId": PROJECT, "name": "Website"}])
    )
    closed = mock.get(f"{PROJECTS}/Projects", params={"states": "CLOSED"}).respond(
        json=page([{"projectId": CLOSED_PROJECT, "name": "Legacy"}])
    )
    website_lines = [line(0), line(1)]
    legacy_line = line(2, refs={"xero.project": "Legacy", "xero.task": "Build"})
    entries = [
        # Noon of 1 November in Auckland (UTC+13).
        {
            "timeEntryId": "a",
            "dateUtc": "2026-10-31T23:00:00Z",
            "duration": 90,
            "description": f"[hb:{key_of(website_lines[0])}] x",
        },
        # Noon of 1 December there: outside the range even though its UTC date is 30 November.
        {
            "timeEntryId": "b",
            "dateUtc": "2026-11-30T23:00:00Z",
            "duration": 30,
            "description": f"[hb:{key_of(website_lines[1])}]",
        },
        {"timeEntryId": "c", "dateUtc": "2026-11-15T23:00:00Z", "duration": 45, "description": None},
    ]

    def website_pages(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params["page"])
        pagination = {"page": n, "pageSize": 500, "pageCount": 2, "itemCount": 3}
        return httpx.Response(200, json={"pagination": pagination, "items": entries[:2] if n == 1 else entries[2:]})

    website = mock.get(f"{PROJECTS}/Projects/{PROJECT}/Time").mock(side_effect=website_pages)
    legacy_entry = {
        "timeEntryId": "d",
        "dateUtc": "2026-11-20T23:00:00Z",
        "duration": 600,
        "description": f"[hb:{key_of(legacy_line)}]",
    }
    legacy = mock.get(f"{PROJECTS}/Projects/{CLOSED_PROJECT}/Time").respond(json=page([legacy_entry]))
    with make_sink(FakeClock(), organisation_timezone="Pacific/Auckland") as sink:
        held = set(sink.holdings(*NOVEMBER, [*website_lines, legacy_line]))
    assert held == {
        Holding(key_of(website_lines[0]), f"{PROJECT}/a", date(2026, 11, 1), 90),
        Holding(key_of(legacy_line), f"{CLOSED_PROJECT}/d", date(2026, 11, 21), 600),
    }
    assert closed.call_count == 1 and legacy.call_count == 1
    params = [dict(c.request.url.params) for c in website.calls]
    window = {"dateAfterUtc": "2026-10-31T11:00:00Z", "dateBeforeUtc": "2026-11-30T11:00:00Z", "pageSize": "500"}
    assert params == [{**window, "page": "1"}, {**window, "page": "2"}]
    assert all(c.request.headers["Xero-Tenant-Id"] == TENANT for c in website.calls)


def test_bills_holdings_read_marked_items_of_live_bills_named_by_the_lines(mock: respx.MockRouter) -> None:
    zoe = [line(0, work_date=date(2026, 11, 3)), line(1, work_date=date(2026, 11, 9), seconds=20)]
    ann = line(2, payee='Ann "AJ" Lee', work_date=date(2026, 11, 5))
    outdated = idempotency_key("xero", "agg:Zoë Müller:C9:2026-11", 7)
    edited = idempotency_key("xero", "agg:Zoë Müller:C8:2026-11", 1)
    early = idempotency_key("xero", "agg:Zoë Müller:C7:2026-11", 1)
    zoe_number, ann_number = bill_number(zoe[0], "Zoë Müller"), bill_number(ann, 'Ann "AJ" Lee')
    live = {
        "InvoiceID": "bill-z",
        "InvoiceNumber": zoe_number,
        "Status": "AUTHORISED",
        "LineItems": [
            {
                "LineItemID": "i0",
                "Description": f"[hb:{key_of(zoe[0])}] C0 · Acme · Zoë Müller · 2026-11-03",
                "Quantity": 1.5,
            },
            # The line's own date wins over a description someone edited.
            {
                "LineItemID": "i1",
                "Description": f"[hb:{key_of(zoe[1])}] C1 · Acme · Zoë Müller · 2026-11-08",
                "Quantity": 0.0167,
            },
            # A write of a version the caller does not know: the date render wrote into the text.
            {
                "LineItemID": "i2",
                "Description": f"[hb:{outdated}] C9 · Acme · Zoë Müller · 2026-11-12 · on 2026-01-01",
                "Quantity": 2.3333,
            },
            # Its text rewritten by hand: the bill's period end is all there is.
            {"LineItemID": "i3", "Description": f"[hb:{edited}] rewritten by hand", "Quantity": 1},
            {"LineItemID": "i4", "Description": f"[hb:{early}] C7 · Acme · Zoë Müller · 2026-10-30", "Quantity": 1},
            {"LineItemID": "i5", "Description": "Parking", "Quantity": 1},
        ],
    }
    gone = [
        {"InvoiceID": "bill-a", "InvoiceNumber": ann_number, "Status": "VOIDED",
         "LineItems": [{"LineItemID": "j0", "Description": f"[hb:{key_of(ann)}]", "Quantity": 1}]},
        {"InvoiceID": "bill-z0", "InvoiceNumber": zoe_number, "Status": "DELETED",
         "LineItems": [{"LineItemID": "k0", "Description": f"[hb:{key_of(zoe[0])}]", "Quantity": 1}]},
    ]  # fmt: skip

    def invoices(request: httpx.Request) -> httpx.Response:
        n = int(request.url.params["page"])
        pagination = {"page": n, "pageSize": 100, "pageCount": 2, "itemCount": 3}
        return httpx.Response(200, json={"pagination": pagination, "Invoices": [live] if n == 1 else gone})

    route = mock.get(f"{ACCOUNTING}/Invoices").mock(side_effect=invoices)
    with make_sink(FakeClock(), mode="bills") as sink:
        held = set(sink.holdings(*NOVEMBER, [*zoe, ann]))
    assert held == {
        Holding(key_of(zoe[0]), "bill-z/i0", date(2026, 11, 3), 90),
        Holding(key_of(zoe[1]), "bill-z/i1", date(2026, 11, 9), 1),
        Holding(outdated, "bill-z/i2", date(2026, 11, 12), 140),
        Holding(edited, "bill-z/i3", date(2026, 11, 30), 60),
    }
    numbers = ",".join(sorted({zoe_number, ann_number}))
    assert [dict(c.request.url.params) for c in route.calls] == [
        {"InvoiceNumbers": numbers, "page": "1", "unitdp": "4"},
        {"InvoiceNumbers": numbers, "page": "2", "unitdp": "4"},
    ]


def test_written_work_date_reads_back_what_render_wrote() -> None:
    x = line(description="moved from 2025-01-01 · 2025-02-02")
    item = render_line_item(x, BillIds(CONTACT_A, "400"), key=key_of(x))
    assert written_work_date(item["Description"]) == date(2026, 11, 3)
    assert written_work_date(f"[hb:{key_of(x)}] rewritten by hand") is None
    assert written_work_date(None) is None


def test_a_bill_line_takes_any_positive_time_the_time_entry_cap_is_the_projects_apis() -> None:
    # A contractor's month on one code can pass 999 hours in a bill (a team account, a long month):
    # Quantity has no cap, unlike one Projects time entry (1-59940 minutes).
    x = line(seconds=125_192 * 60)
    item = render_line_item(x, BillIds(CONTACT_A, "400"), key=key_of(x))
    assert item["Quantity"] == Decimal("2086.5333")
    with pytest.raises(ValueError, match="no time to deliver"):
        render_line_item(line(seconds=0), BillIds(CONTACT_A, "400"), key=key_of(x))


def test_holdings_stop_at_the_daily_limit_and_report_it(mock: respx.MockRouter) -> None:
    listing = mock.get(url__regex=rf"^{re.escape(PROJECTS)}/Projects/[0-9a-f-]+/Time").respond(
        json=page([]), headers={"X-DayLimit-Remaining": "0"}
    )
    lines = [line(0, refs={"xero.project": PROJECT}), line(1, refs={"xero.project": CLOSED_PROJECT})]
    with make_sink(FakeClock()) as sink:
        with pytest.raises(DailyLimitError, match="daily limit"):
            list(sink.holdings(*NOVEMBER, lines))
        assert sink.stats()["day_limit_remaining"] == 0
    assert listing.call_count == 1  # the second project was not asked for: no calls were left today


def test_xero_sink_is_the_sink_of_the_configured_mode() -> None:
    from connectors.xero import XeroBillsSink, XeroProjectsSink

    clock = FakeClock()
    with make_sink(clock, mode="projects") as projects, make_sink(clock, mode="bills") as bills:
        assert type(projects) is XeroProjectsSink and type(bills) is XeroBillsSink
        assert isinstance(projects, XeroSink) and isinstance(bills, XeroSink)
        assert projects.name == bills.name == XeroSink.name == "xero"


def test_a_projects_list_that_ignores_the_page_number_stops(mock: respx.MockRouter) -> None:
    from connectors.errors import PayloadError

    clock = FakeClock()
    same = {"items": [{"projectId": "p-1", "name": "Website"}], "pagination": {"pageCount": 5}}
    mock.get(f"{PROJECTS}/Projects").mock(return_value=httpx.Response(200, json=same))
    with make_sink(clock, mode="projects") as sink, pytest.raises(PayloadError, match="same page twice"):
        sink.client.pages("/Projects", {"states": "INPROGRESS"})
