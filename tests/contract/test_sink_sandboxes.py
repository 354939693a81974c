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

from connectors._http import RateLimiter
from connectors.delivery import Line, Op
from connectors.errors import ConfigError
from connectors.quickbooks import QuickBooksConfig, QuickBooksSink
from connectors.sandbox.quickbooks import BATCH, TIME_ACTIVITY, QuickBooksSandbox
from connectors.sandbox.xero import INVOICES_PUT, TIME_CREATE, XeroSandbox
from connectors.xero import XeroConfig, XeroSink


def no_sleep(_: float) -> None:
    """Waits are not slept in tests."""


def fast_limiter() -> RateLimiter:
    return RateLimiter(1_000_000, sleep=no_sleep)


def line(n: int, *, version: int = 1, seconds: int = 5400, payee: str = "Zoë Müller", **extra: Any) -> Line:
    refs = {
        "quickbooks.item": "Consulting",
        "xero.project": "Website",
        "xero.task": "Build",
        "xero.account": "400",
    }
    return Line.with_refs(
        refs,
        sink=extra.pop("sink", "quickbooks"),
        line_key=f"entry:asana:ws:{n}",
        version=version,
        work_date=date(2026, 11, 3),
        period_end=date(2026, 11, 30),
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
        mode=mode,  # type: ignore[arg-type]
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
