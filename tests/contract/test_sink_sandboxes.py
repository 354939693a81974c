"""Both sinks against their emulators: delivered once, repeat-safe, lost answers resolved, conflicts clear."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors._ratelimit import RateLimiter
from connectors.delivery import Holding, Line, Op, Receipt, encode_json
from connectors.errors import ConfigError
from connectors.quickbooks import QuickBooksConfig, QuickBooksSink
from connectors.sandbox.quickbooks import BATCH, QUERY, TIME_ACTIVITY, QuickBooksSandbox
from connectors.sandbox.xero import INVOICES_LIST, INVOICES_PUT, TIME_CREATE, TIME_LIST, XeroSandbox
from connectors.xero import XeroConfig, XeroSink
from tests.fakes import FakeClock, no_sleep


def fast_limiter() -> RateLimiter:
    return RateLimiter(1_000_000, clock=FakeClock())


def line(n: int, *, version: int = 1, seconds: int = 5400, payee: str = "Zoë Müller", **extra: Any) -> Line:
    refs = {
        "quickbooks.item": "Consulting",
        "xero.project": extra.pop("project", "Website"),
        "xero.task": "Build",
        "xero.account": "400",
    }
    return Line.with_refs(
        refs,
        sink=extra.pop("sink", "quickbooks"),
        line_key=f"entry:asana:ws:{n}",
        version=version,
        work_date=extra.pop("work_date", date(2026, 11, 3)),
        period_end=extra.pop("period_end", date(2026, 11, 30)),
        person=payee,
        payee=payee,
        code=f"C{n % 3}",
        client="Acme Corp",
        seconds=seconds,
        billable=True,
        hourly_rate=Decimal("95.50"),
        cost_center=extra.pop("cost_center", "CC-100"),
        description=f"work item {n}",
        **extra,
    )


# --------------------------------------------------------------------------- QuickBooks


@pytest.fixture
def qbo() -> Iterator[QuickBooksSandbox]:
    with QuickBooksSandbox(
        vendors=["Zoë Müller", "Ann O'Brien"], customers=["Acme Corp"], items=["Consulting"], classes=["CC-100"]
    ) as sandbox:
        yield sandbox


def qbo_sink(sandbox: QuickBooksSandbox, **config: Any) -> QuickBooksSink:
    token = config.pop("token", sandbox.token)
    settings = QuickBooksConfig(
        realm_id=sandbox.realm_id, base_url=sandbox.server.root_url, access_token=SecretStr(token), **config
    )
    return QuickBooksSink(settings, limiter=fast_limiter(), batch_limiter=fast_limiter(), sleep=no_sleep)


def test_qbo_push_stores_and_the_same_ops_twice_write_once(qbo: QuickBooksSandbox) -> None:
    ops = [Op.for_line("create", line(i, payee="Ann O'Brien" if i % 2 else "Zoë Müller")) for i in range(35)]
    with qbo_sink(qbo) as sink:
        first = list(sink.push(ops))
        second = list(sink.push(ops))
    assert {r.status for r in first} == {"ok"} and len(qbo.time_activities()) == 35
    assert {r.idempotency_key: r.remote_id for r in first} == {r.idempotency_key: r.remote_id for r in second}
    stored = qbo.time_activities()[0]
    assert (stored["Hours"], stored["Minutes"], stored["NameOf"]) == (1, 30, "Vendor")
    assert qbo.call_count(BATCH) == 4 and qbo.call_count(TIME_ACTIVITY) == 0  # 30 + 5 per push


@pytest.mark.parametrize("lost", [None, 504])
def test_qbo_lost_answer_is_unknown_then_found_and_never_duplicated(qbo: QuickBooksSandbox, lost: int | None) -> None:
    ops = [Op.for_line("create", line(i)) for i in range(3)]
    qbo.fail_after_commit(1, status=lost)
    with qbo_sink(qbo) as sink:
        receipts = list(sink.push(ops))
        assert {r.status for r in receipts} == {"unknown"}
        assert len(qbo.time_activities()) == 3  # it landed; only the answer was lost
        found = [sink.find(op.idempotency_key, op.line) for op in ops]
        assert all(f is not None and f.status == "ok" and f.remote_id for f in found)
        again = list(sink.push(ops))
    assert {r.status for r in again} == {"ok"} and len(qbo.time_activities()) == 3
    assert sorted(str(f.remote_id) for f in found if f) == sorted(str(r.remote_id) for r in again)


def test_qbo_find_many_resolves_a_lost_batch_with_one_query(qbo: QuickBooksSandbox) -> None:
    ops = [Op.for_line("create", line(i, work_date=date(2026, 11, 3 + i))) for i in range(5)]
    qbo.fail_after_commit(1)
    with qbo_sink(qbo) as sink:
        assert {r.status for r in sink.push(ops)} == {"unknown"}
        queries = qbo.call_count(QUERY)
        found = sink.find_many([op.idempotency_key for op in ops[:4]], [op.line for op in ops[:4]])
    assert qbo.call_count(QUERY) - queries == 1
    assert sorted(found) == sorted(op.idempotency_key for op in ops[:4])
    assert all(r.status == "ok" and r.remote_id and r.sync_token == "0" for r in found.values())


def test_qbo_update_delete_and_stale_sync_token(qbo: QuickBooksSandbox) -> None:
    with qbo_sink(qbo) as sink:
        [created] = list(sink.push([Op.for_line("create", line(1))]))
        update = Op.for_line("update", line(1, version=2, seconds=7200), remote_id=created.remote_id, sync_token="0")
        [updated] = list(sink.push([update]))
        assert (updated.status, updated.sync_token) == ("ok", "1")
        assert qbo.time_activities()[0]["Hours"] == 2
        stale = Op.for_line("update", line(1, version=3, seconds=60), remote_id=created.remote_id, sync_token="0")
        [refused] = list(sink.push([stale]))
        assert (
            refused.status == "failed" and "Stale Object Error" in str(refused.error) and "5010" in str(refused.error)
        )
        delete = Op.for_line("delete", line(1, version=4), remote_id=created.remote_id, sync_token="1")
        [deleted] = list(sink.push([delete]))
        [again] = list(
            sink.push([Op.for_line("delete", line(1, version=5), remote_id=created.remote_id, sync_token="1")])
        )
    assert deleted.status == "ok" and again.status == "ok" and qbo.time_activities() == []


def test_qbo_wrong_token_is_a_config_error(qbo: QuickBooksSandbox) -> None:
    with qbo_sink(qbo, token="not-the-token-1234") as sink, pytest.raises(ConfigError, match="refused the credential"):
        sink.check()


def test_qbo_missing_class_fails_the_line_only(qbo: QuickBooksSandbox) -> None:
    ops = [Op.for_line("create", line(1)), Op.for_line("create", line(2, cost_center="CC-999"))]
    with qbo_sink(qbo) as sink:
        receipts = {r.idempotency_key: r for r in sink.push(ops)}
    assert receipts[ops[0].idempotency_key].status == "ok"
    assert "Class 'CC-999'" in str(receipts[ops[1].idempotency_key].error)


def test_qbo_sandbox_refuses_oversized_batches_and_throttles(qbo: QuickBooksSandbox) -> None:
    url = f"{qbo.base_url}/batch"
    items = [{"bId": str(i), "operation": "create", "TimeActivity": {}} for i in range(31)]
    headers = {"Authorization": f"Bearer {qbo.token}"}
    with httpx.Client() as client:
        response = client.post(url, json={"BatchItemRequest": items}, headers=headers)
        assert response.status_code == 400 and response.json()["Fault"]["Error"][0]["Message"] == "Batch Size Exceeded"
        qbo.server.reset_counts()
    with QuickBooksSandbox(rate_limit_per_minute=2, clock=lambda: 0.0) as small, httpx.Client() as client:
        query = f"{small.base_url}/query"
        statuses = [
            client.get(
                query, params={"query": "SELECT * FROM Vendor"}, headers={"Authorization": f"Bearer {small.token}"}
            )
            for _ in range(3)
        ]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].json()["Fault"]["type"] == "ThrottleExceeded"


# --------------------------------------------------------------------------- Xero


@pytest.fixture
def xero() -> Iterator[XeroSandbox]:
    with XeroSandbox(
        projects={"Website": ["Design", "Build"]},
        users=["Zoë Müller", "Ann O'Brien"],
        contacts=["Zoë Müller", "Ann O'Brien"],
        accounts=["400"],
        tracking={"Cost Center": ["CC-100", "CC-200"]},
        rate_limit_per_minute=None,
    ) as sandbox:
        yield sandbox


def xero_sink(sandbox: XeroSandbox, mode: str, **config: Any) -> XeroSink:
    settings = XeroConfig(
        tenant_id=config.pop("tenant_id", sandbox.tenant_id),
        mode=mode,
        projects_base_url=sandbox.projects_url,
        accounting_base_url=sandbox.accounting_url,
        access_token=SecretStr(sandbox.token),
        tracking_categories=["Cost Center"],
        **config,
    )
    return XeroSink(settings, limiter=fast_limiter(), sleep=no_sleep)


def xline(n: int, **extra: Any) -> Line:
    return line(n, sink="xero", **extra)


def test_xero_projects_push_twice_writes_once(xero: XeroSandbox) -> None:
    ops = [Op.for_line("create", xline(i)) for i in range(4)]
    with xero_sink(xero, "projects") as sink:
        first = list(sink.push(ops))
        second = list(sink.push(ops))
        stats = sink.stats()
    assert {r.status for r in first} == {"ok"} and [r.remote_id for r in first] == [r.remote_id for r in second]
    assert len(xero.time_entries()) == 4 and {e["duration"] for e in xero.time_entries()} == {90}
    assert 0 < stats["day_limit_remaining"] < 5000


def test_xero_projects_lost_answer_is_found_and_not_duplicated(xero: XeroSandbox) -> None:
    op = Op.for_line("create", xline(1))
    xero.fail_after_commit(1)
    with xero_sink(xero, "projects") as sink:
        [receipt] = list(sink.push([op]))
        assert receipt.status == "unknown" and len(xero.time_entries()) == 1
        found = sink.find(op.idempotency_key, op.line)
        assert found is not None and found.status == "ok"
        [again] = list(sink.push([op]))
    assert again.remote_id == found.remote_id and len(xero.time_entries()) == 1
    assert xero.call_count(TIME_CREATE) == 2


def test_xero_projects_update_and_delete(xero: XeroSandbox) -> None:
    with xero_sink(xero, "projects") as sink:
        [created] = list(sink.push([Op.for_line("create", xline(1))]))
        update = Op.for_line("update", xline(1, version=2, seconds=600), remote_id=created.remote_id)
        [updated] = list(sink.push([update]))
        assert updated.status == "ok" and xero.time_entries()[0]["duration"] == 10
        assert update.idempotency_key in str(xero.time_entries()[0]["description"])
        [deleted] = list(sink.push([Op.for_line("delete", xline(1, version=3), remote_id=created.remote_id)]))
    assert deleted.status == "ok" and xero.time_entries() == []


def test_xero_requires_the_tenant(xero: XeroSandbox) -> None:
    other_tenant = "00000000-0000-4000-8000-000000000000"
    with (
        xero_sink(xero, "projects", tenant_id=other_tenant) as sink,
        pytest.raises(ConfigError, match="HOURBRIDGE_XERO__TENANT_ID"),
    ):
        sink.check()
    with httpx.Client() as client:
        bare = client.get(f"{xero.projects_url}/ProjectsUsers", headers={"Authorization": f"Bearer {xero.token}"})
    assert bare.status_code == 400


def test_xero_bills_grouped_repeat_safe_and_resolved_after_a_lost_answer(xero: XeroSandbox) -> None:
    ops = [Op.for_line("create", xline(i, payee="Ann O'Brien" if i == 3 else "Zoë Müller")) for i in range(4)]
    xero.fail_after_commit(1)
    with xero_sink(xero, "bills") as sink:
        lost = list(sink.push(ops))
        assert {r.status for r in lost} == {"unknown"}
        found = [sink.find(op.idempotency_key, op.line) for op in ops]
        assert all(f is not None and f.status == "ok" for f in found)
        again = list(sink.push(ops))
    assert {r.status for r in again} == {"ok"}
    bills = xero.invoices()
    assert len(bills) == 2 and sorted(len(b["LineItems"]) for b in bills) == [1, 3]
    assert all(b["Type"] == "ACCPAY" and b["Status"] == "DRAFT" for b in bills)
    assert xero.call_count(INVOICES_PUT) == 1  # the repeat found its lines on the bills and sent nothing


def test_xero_bills_update_delete_and_approved_bills_refuse_changes(xero: XeroSandbox) -> None:
    with xero_sink(xero, "bills") as sink:
        created = list(sink.push([Op.for_line("create", xline(i)) for i in range(2)]))
        update = Op.for_line("update", xline(0, version=2, seconds=7200), remote_id=created[0].remote_id)
        [updated] = list(sink.push([update]))
        [bill] = xero.invoices()
        assert updated.status == "ok" and updated.remote_id == created[0].remote_id
        assert sorted(str(i["Quantity"]) for i in bill["LineItems"]) == ["1.5000", "2.0000"]
        [removed] = list(sink.push([Op.for_line("delete", xline(1, version=2), remote_id=created[1].remote_id)]))
        assert removed.status == "ok" and len(xero.invoices()[0]["LineItems"]) == 1
        xero.set_invoice_status(bill["InvoiceID"], "AUTHORISED")
        late = Op.for_line("update", xline(0, version=3, seconds=60), remote_id=created[0].remote_id)
        [refused] = list(sink.push([late]))
        assert refused.status == "failed" and "AUTHORISED" in str(refused.error)
        xero.set_invoice_status(bill["InvoiceID"], "DRAFT")
        [last] = list(sink.push([Op.for_line("delete", xline(0, version=4), remote_id=created[0].remote_id)]))
    assert last.status == "ok" and xero.invoices()[0]["Status"] == "DELETED"


def test_xero_sandbox_minute_limit_answers_429_with_problem_and_headers() -> None:
    with XeroSandbox(users=["A"], rate_limit_per_minute=2, clock=lambda: 0.0) as sandbox, httpx.Client() as client:
        headers = {"Authorization": f"Bearer {sandbox.token}", "Xero-Tenant-Id": sandbox.tenant_id}
        answers = [client.get(f"{sandbox.projects_url}/ProjectsUsers", headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[1].headers["X-MinLimit-Remaining"] == "0" and answers[0].headers["X-DayLimit-Remaining"] == "4999"
    assert answers[2].headers["X-Rate-Limit-Problem"] == "minute" and int(answers[2].headers["Retry-After"]) >= 1
    assert json.loads(answers[0].content)["items"][0]["name"] == "A"


# --------------------------------------------------------------------------- holdings (what reconcile reads back)

NOVEMBER = (date(2026, 11, 1), date(2026, 11, 30))


def held_as_pushed(ops: list[Op], receipts: dict[str, Receipt]) -> set[Holding]:
    """The holdings a sink should report for ``ops``: their keys, remote ids, work dates, minutes and sync tokens."""
    return {
        Holding(
            op.idempotency_key,
            str(receipts[op.idempotency_key].remote_id),
            op.line.work_date,
            op.line.minutes,
            receipts[op.idempotency_key].sync_token,
        )
        for op in ops
    }


def qbo_by_hand(sandbox: QuickBooksSandbox, txn_date: str, **fields: Any) -> None:
    """A TimeActivity keyed straight into QuickBooks (no marker of ours)."""
    body = {
        "TxnDate": txn_date,
        "NameOf": "Vendor",
        "VendorRef": {"value": sandbox.id_of("Vendor", "Zoë Müller")},
        "ItemRef": {"value": sandbox.id_of("Item", "Consulting")},
        "Hours": 2,
        "Minutes": 0,
        **fields,
    }
    with httpx.Client() as client:
        answer = client.post(
            f"{sandbox.base_url}/timeactivity", json=body, headers={"Authorization": f"Bearer {sandbox.token}"}
        )
    assert answer.status_code == 200


def test_qbo_holdings_are_the_marked_records_of_the_range(qbo: QuickBooksSandbox) -> None:
    dated = [
        (date(2026, 10, 31), 5400),
        (date(2026, 11, 1), 20),  # under a minute: delivered, and read back, as 1
        (date(2026, 11, 17), 25 * 3600),
        (date(2026, 11, 30), 3 * 3600 + 29 * 60 + 30),
        (date(2026, 12, 1), 600),
    ]
    ops = [Op.for_line("create", line(i, work_date=d, seconds=s)) for i, (d, s) in enumerate(dated)]
    with qbo_sink(qbo) as sink:
        receipts = {r.idempotency_key: r for r in sink.push(ops)}
        qbo_by_hand(qbo, "2026-11-17", Description="entered by hand")
        qbo_by_hand(qbo, "2026-11-18")
        held = list(sink.holdings(*NOVEMBER, [op.line for op in ops]))
    assert len(qbo.time_activities()) == 7
    assert len(held) == 3 and set(held) == held_as_pushed(ops[1:4], receipts)
    assert sorted(h.minutes for h in held) == [1, 210, 1500]


def test_qbo_holdings_lose_a_deleted_record(qbo: QuickBooksSandbox) -> None:
    ops = [Op.for_line("create", line(i)) for i in range(3)]
    with qbo_sink(qbo) as sink:
        receipts = {r.idempotency_key: r for r in sink.push(ops)}
        gone = receipts[ops[1].idempotency_key]
        [deleted] = list(
            sink.push([Op.for_line("delete", line(1, version=2), remote_id=gone.remote_id, sync_token="0")])
        )
        held = set(sink.holdings(*NOVEMBER, [ops[0].line, ops[2].line]))
    assert deleted.status == "ok"
    assert held == held_as_pushed([ops[0], ops[2]], receipts)


def test_qbo_holdings_page_past_a_thousand_records() -> None:
    with QuickBooksSandbox(
        vendors=["Zoë Müller"],
        customers=["Acme Corp"],
        items=["Consulting"],
        classes=["CC-100"],
        rate_limit_per_minute=None,
        batches_per_minute=None,
    ) as sandbox:
        ops = [
            Op.for_line("create", line(i, work_date=date(2026, 11, 1 + i % 30), seconds=60 * (1 + i)))
            for i in range(1003)
        ]
        with qbo_sink(sandbox) as sink:
            receipts = {r.idempotency_key: r for r in sink.push(ops)}
            sandbox.server.reset_counts()
            held = list(sink.holdings(*NOVEMBER, [op.line for op in ops]))
        assert sandbox.call_count(QUERY) == 2  # STARTPOSITION 1 and 1001
    assert len(held) == 1003 and set(held) == held_as_pushed(ops, receipts)


@pytest.fixture
def xero_two_projects() -> Iterator[XeroSandbox]:
    with XeroSandbox(
        projects={"Website": ["Build"], "Mobile": ["Build"]},
        users=["Zoë Müller", "Ann O'Brien"],
        contacts=["Zoë Müller", "Ann O'Brien"],
        accounts=["400"],
        tracking={"Cost Center": ["CC-100"]},
        rate_limit_per_minute=None,
    ) as sandbox:
        yield sandbox


def xero_by_hand(sandbox: XeroSandbox, project: str, date_utc: str, **fields: Any) -> None:
    """A time entry logged straight in Xero (no marker of ours)."""
    pid = sandbox.project_id(project)
    with httpx.Client() as client:
        headers = {"Authorization": f"Bearer {sandbox.token}", "Xero-Tenant-Id": sandbox.tenant_id}
        tasks = client.get(f"{sandbox.projects_url}/Projects/{pid}/Tasks", headers=headers).json()["items"]
        users = client.get(f"{sandbox.projects_url}/ProjectsUsers", headers=headers).json()["items"]
        body = {"userId": users[0]["userId"], "taskId": tasks[0]["taskId"], "dateUtc": date_utc, "duration": 45}
        answer = client.post(f"{sandbox.projects_url}/Projects/{pid}/Time", json={**body, **fields}, headers=headers)
    assert answer.status_code == 200


def test_xero_projects_holdings_give_work_dates_in_the_organisation_zone(xero_two_projects: XeroSandbox) -> None:
    sandbox = xero_two_projects
    # Pacific/Auckland is UTC+13 in November: noon of 1 November is 23:00 UTC on 31 October, and
    # noon of 1 December is 23:00 UTC on 30 November; a range read in UTC dates would be off by a day.
    dated = [
        (date(2026, 10, 31), "Website"),
        (date(2026, 11, 1), "Website"),
        (date(2026, 11, 14), "Mobile"),
        (date(2026, 11, 30), "Mobile"),
        (date(2026, 12, 1), "Website"),
    ]
    ops = [
        Op.for_line("create", xline(i, work_date=d, project=p, seconds=600 * (i + 1))) for i, (d, p) in enumerate(dated)
    ]
    with xero_sink(sandbox, "projects", organisation_timezone="Pacific/Auckland") as sink:
        receipts = {r.idempotency_key: r for r in sink.push(ops)}
        xero_by_hand(sandbox, "Website", "2026-11-10T23:00:00Z")
        xero_by_hand(sandbox, "Mobile", "2026-11-11T23:00:00Z", description="standup")
        held = list(sink.holdings(*NOVEMBER, [op.line for op in ops]))
        gone = receipts[ops[2].idempotency_key].remote_id
        tombstone = xline(2, version=2, work_date=date(2026, 11, 14), project="Mobile")
        [deleted] = list(sink.push([Op.for_line("delete", tombstone, remote_id=gone)]))
        after_delete = set(sink.holdings(*NOVEMBER, [op.line for op in ops]))
    assert {e["dateUtc"] for e in sandbox.time_entries()} >= {"2026-10-31T23:00:00Z", "2026-11-30T23:00:00Z"}
    assert len(held) == 3 and set(held) == held_as_pushed(ops[1:4], receipts)
    assert sorted(h.minutes for h in held) == [20, 30, 40]
    assert deleted.status == "ok" and after_delete == held_as_pushed([ops[1], ops[3]], receipts)


def test_xero_projects_holdings_page_past_500_entries(xero: XeroSandbox) -> None:
    ops = [Op.for_line("create", xline(i, work_date=date(2026, 11, 1 + i % 30))) for i in range(503)]
    with xero_sink(xero, "projects") as sink:
        receipts = {r.idempotency_key: r for r in sink.push(ops)}
        xero.server.reset_counts()
        held = list(sink.holdings(*NOVEMBER, [op.line for op in ops]))
    assert xero.call_count(TIME_LIST) == 2  # pageSize 500
    assert len(held) == 503 and set(held) == held_as_pushed(ops, receipts)


def test_xero_bills_holdings_read_marked_lines_of_live_bills_only(xero: XeroSandbox) -> None:
    lines = [
        xline(0, work_date=date(2026, 11, 3), seconds=5400),
        xline(1, work_date=date(2026, 11, 30), seconds=20),
        xline(2, work_date=date(2026, 11, 12), seconds=7 * 3600 + 1),
        xline(3, payee="Ann O'Brien", work_date=date(2026, 11, 5), seconds=3600),
        xline(4, work_date=date(2026, 10, 20), period_end=date(2026, 10, 31)),  # October's bill
    ]
    ops = [Op.for_line("create", x) for x in lines]
    with xero_sink(xero, "bills") as sink:
        receipts = {r.idempotency_key: r for r in sink.push(ops)}
        zoe = next(b for b in xero.invoices() if len(b["LineItems"]) == 3)
        # Someone adds a line of their own to the draft bill in Xero.
        extra = {"Description": "Parking", "Quantity": 1, "UnitAmount": 12, "AccountCode": "400"}
        edited = {**zoe, "LineItems": [*zoe["LineItems"], extra]}
        with httpx.Client() as client:
            headers = {"Authorization": f"Bearer {xero.token}", "Xero-Tenant-Id": xero.tenant_id}
            answer = client.post(
                f"{xero.accounting_url}/Invoices", content=encode_json({"Invoices": [edited]}), headers=headers
            )
        [stored] = [b for b in xero.invoices() if b["InvoiceID"] == zoe["InvoiceID"]]
        assert answer.status_code == 200 and len(stored["LineItems"]) == 4
        held = list(sink.holdings(*NOVEMBER, lines))
        ann_bill, _ = str(receipts[ops[3].idempotency_key].remote_id).split("/")
        xero.set_invoice_status(ann_bill, "VOIDED")
        after_void = set(sink.holdings(*NOVEMBER, lines))
        [deleted] = list(
            sink.push(
                [Op.for_line("delete", xline(1, version=2), remote_id=receipts[ops[1].idempotency_key].remote_id)]
            )
        )
        after_delete = set(sink.holdings(*NOVEMBER, lines))
        october = set(sink.holdings(date(2026, 10, 1), date(2026, 10, 31), lines))
    assert len(held) == 4 and set(held) == held_as_pushed(ops[:4], receipts)
    assert sorted(h.minutes for h in held) == [1, 60, 90, 420]
    assert after_void == held_as_pushed(ops[:3], receipts)
    assert deleted.status == "ok" and after_delete == held_as_pushed([ops[0], ops[2]], receipts)
    assert october == held_as_pushed([ops[4]], receipts)


def test_xero_sandbox_pages_invoices_and_lists_line_items_only_on_a_page(xero: XeroSandbox) -> None:
    ops = [
        Op.for_line("create", xline(i, work_date=date(2026, m, 3), period_end=date(2026, m, 28)))
        for i, m in enumerate((2, 3, 4))
    ]
    with xero_sink(xero, "bills") as sink:
        assert {r.status for r in sink.push(ops)} == {"ok"}
    headers = {"Authorization": f"Bearer {xero.token}", "Xero-Tenant-Id": xero.tenant_id}
    with httpx.Client(headers=headers) as client:
        url = f"{xero.accounting_url}/Invoices"
        first = client.get(url, params={"page": "1", "pageSize": "2"}).json()
        second = client.get(url, params={"page": "2", "pageSize": "2"}).json()
        unpaged = client.get(url).json()
    assert first["pagination"] == {"page": 1, "pageSize": 2, "pageCount": 2, "itemCount": 3}
    assert len(first["Invoices"]) == 2 and len(second["Invoices"]) == 1
    assert all(i["LineItems"] for i in first["Invoices"] + second["Invoices"])
    assert len(unpaged["Invoices"]) == 3 and not any("LineItems" in i for i in unpaged["Invoices"])


@pytest.mark.parametrize("mode", ["projects", "bills"])
def test_xero_find_many_resolves_lost_writes_with_one_listing(xero: XeroSandbox, mode: str) -> None:
    days = [date(2026, 11, 3 + i) for i in range(4)]
    ops = [Op.for_line("create", xline(i, work_date=day)) for i, day in enumerate(days)]
    with xero_sink(xero, mode) as sink:
        xero.fail_after_commit(len(ops) if mode == "projects" else 1)
        assert {r.status for r in sink.push(ops)} == {"unknown"}
        route = TIME_LIST if mode == "projects" else INVOICES_LIST
        listed = xero.call_count(route)
        found = sink.find_many([op.idempotency_key for op in ops], [op.line for op in ops])
    assert xero.call_count(route) - listed == 1
    assert sorted(found) == sorted(op.idempotency_key for op in ops)
    assert all(r.status == "ok" and r.remote_id for r in found.values())
