"""QuickBooksSink against mocked HTTP: batches, requestid, name lookups, durations, faults, limits, lost answers."""

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
from connectors.delivery import Holding, Line, Op, idempotency_key, marked_keys
from connectors.errors import ConfigError
from connectors.quickbooks import QuickBooksConfig, QuickBooksIds, QuickBooksSink, render_time_activity
from connectors.quickbooks.render import DESCRIPTION_LIMIT
from tests.fakes import FakeClock

BASE = "https://qbo.test"
REALM = "4620816365000000001"
API = f"{BASE}/v3/company/{REALM}"
TOKEN = "qbo_unit_token_7c1d"
IDS = QuickBooksIds(payee="56", customer="3", item="9", klass="5000000001")


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as router:
        yield router


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_sink(clock: FakeClock, *, per_minute: float = 1e6, batches: float = 1e6, **config: Any) -> QuickBooksSink:
    settings = QuickBooksConfig(realm_id=REALM, base_url=BASE, access_token=SecretStr(TOKEN), **config)
    return QuickBooksSink(
        settings,
        limiter=RateLimiter(per_minute, clock=clock),
        batch_limiter=RateLimiter(batches, clock=clock),
        sleep=clock.sleep,
    )


def line(n: int = 0, *, payee: str = "Zoë Müller", seconds: int = 5400, billable: bool = True, **extra: Any) -> Line:
    fields: dict[str, Any] = {
        "sink": "quickbooks",
        "line_key": f"entry:asana:ws:{n}",
        "version": 1,
        "work_date": date(2026, 11, 3),
        "period_end": date(2026, 11, 30),
        "person": payee,
        "payee": payee,
        "code": "ACME-WEB",
        "client": "Acme Corp",
        "seconds": seconds,
        "billable": billable,
        "hourly_rate": Decimal("95.50"),
        "cost_center": "CC-100",
        "description": "Homepage build",
    }
    fields.update(extra)
    refs = fields.pop("refs", {"quickbooks.item": "Consulting"})
    return Line.with_refs(refs, **fields)


LISTS = {
    "Vendor": ("DisplayName", {"Zoë Müller": "56", "Ann O'Brien": "57"}),
    "Customer": ("DisplayName", {"Acme Corp": "3"}),
    "Item": ("Name", {"Consulting": "9"}),
    "Class": ("FullyQualifiedName", {"CC-100": "5000000001"}),
}


def query_answer(request: httpx.Request) -> httpx.Response:
    statement = parse_qs(urlsplit(str(request.url)).query)["query"][0]
    entity = re.match(r"SELECT \* FROM (\w+)", statement)
    assert entity is not None
    name = entity.group(1)
    if name == "TimeActivity":
        return httpx.Response(200, json={"QueryResponse": {}})
    field, rows = LISTS[name]
    asked = {v.replace("\\'", "'") for v in re.findall(r"'((?:[^'\\]|\\.)*)'", statement)}
    found = [{"Id": ident, field: value} for value, ident in rows.items() if value in asked]
    return httpx.Response(200, json={"QueryResponse": {name: found} if found else {}})


def batch_answer(request: httpx.Request) -> httpx.Response:
    items = json.loads(request.content)["BatchItemRequest"]
    answers = []
    for item in items:
        activity = dict(item["TimeActivity"])
        activity.setdefault("Id", str(1000 + int(item["bId"])))
        activity["SyncToken"] = "0"
        answers.append({"bId": item["bId"], "TimeActivity": activity})
    return httpx.Response(200, json={"BatchItemResponse": answers, "time": "2026-11-04T10:00:00-08:00"})


def test_names_resolve_with_one_query_per_kind_and_escaped_quotes(mock: respx.MockRouter, clock: FakeClock) -> None:
    queries = mock.get(f"{API}/query").mock(side_effect=query_answer)
    mock.post(f"{API}/batch").mock(side_effect=batch_answer)
    ops = [Op.for_line("create", line(i, payee="Ann O'Brien" if i % 2 else "Zoë Müller")) for i in range(8)]
    with make_sink(clock) as sink:
        receipts = list(sink.push(ops[:6]))
        assert {r.status for r in receipts} == {"ok"}
        list(sink.push(ops[6:]))  # cached: no further lookups
    statements = [parse_qs(urlsplit(str(c.request.url)).query)["query"][0] for c in queries.calls]
    assert sorted(s.split()[3] for s in statements) == ["Class", "Customer", "Item", "Vendor"]
    vendor = next(s for s in statements if "FROM Vendor" in s)
    assert "DisplayName IN ('Ann O\\'Brien','Zoë Müller')" in vendor


def test_missing_vendor_is_a_config_error_naming_it_and_where_to_fix(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock.get(f"{API}/query").mock(side_effect=query_answer)
    ghost = line(1, payee="Ghost Contractor")
    with make_sink(clock) as sink:
        with pytest.raises(ConfigError) as caught:
            sink.ids_for(ghost)
        [receipt] = list(sink.push([Op.for_line("create", ghost)]))
    assert "Vendor 'Ghost Contractor'" in caught.value.message
    assert "people entry of 'Ghost Contractor'" in caught.value.message
    assert receipt.status == "failed" and receipt.error is not None and "Ghost Contractor" in receipt.error


def test_code_without_item_is_a_config_error_naming_the_code(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock.get(f"{API}/query").mock(side_effect=query_answer)
    with make_sink(clock) as sink, pytest.raises(ConfigError, match="code 'ACME-WEB' names no quickbooks item"):
        sink.ids_for(line(refs={}))


def test_batches_hold_batch_size_items_and_every_write_carries_requestid(
    mock: respx.MockRouter, clock: FakeClock
) -> None:
    mock.get(f"{API}/query").mock(side_effect=query_answer)
    batch = mock.post(f"{API}/batch").mock(side_effect=batch_answer)
    single = mock.post(f"{API}/timeactivity").mock(
        return_value=httpx.Response(200, json={"TimeActivity": {"Id": "77", "SyncToken": "0"}})
    )
    ops = [Op.for_line("create", line(i)) for i in range(61)]
    with make_sink(clock) as sink:
        receipts = list(sink.push(ops))
    assert len(receipts) == 61 and {r.status for r in receipts} == {"ok"}
    sizes = [len(json.loads(c.request.content)["BatchItemRequest"]) for c in batch.calls]
    assert sizes == [30, 30]
    for call in batch.calls:
        params = parse_qs(urlsplit(str(call.request.url)).query)
        assert len(params["requestid"][0]) <= 36 and params["minorversion"] == ["75"]
        assert all(len(i["bId"]) <= 10 for i in json.loads(call.request.content)["BatchItemRequest"])
    [lone] = single.calls
    assert parse_qs(urlsplit(str(lone.request.url)).query)["requestid"] == [ops[60].idempotency_key]
    assert lone.request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_same_ops_give_the_same_batch_requestid(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock.get(f"{API}/query").mock(side_effect=query_answer)
    batch = mock.post(f"{API}/batch").mock(side_effect=batch_answer)
    ops = [Op.for_line("create", line(i)) for i in range(3)]
    with make_sink(clock) as sink:
        list(sink.push(ops))
        list(sink.push(list(reversed(ops))))
    ids = [parse_qs(urlsplit(str(c.request.url)).query)["requestid"][0] for c in batch.calls]
    assert ids[0] == ids[1]


@pytest.mark.parametrize(
    ("seconds", "hours", "minutes"),
    [
        (3 * 3600 + 29 * 60 + 29, 3, 29),  # 29 s round down
        (3 * 3600 + 29 * 60 + 30, 3, 30),  # 30 s round up
        (59 * 60 + 30, 1, 0),  # carries into the hour
        (20, 0, 1),  # positive time never rounds to nothing
        (25 * 3600, 25, 0),  # Hours is not capped at a day
    ],
)
def test_duration_splits_into_hours_and_minutes(seconds: int, hours: int, minutes: int) -> None:
    body = render_time_activity(line(seconds=seconds), IDS, key=idempotency_key("quickbooks", "k", 1))
    assert (body["Hours"], body["Minutes"]) == (hours, minutes)
    assert 0 <= body["Minutes"] <= 59 and "Seconds" not in body


def test_rate_only_on_billable_time_and_description_marked_within_limit() -> None:
    key = idempotency_key("quickbooks", "entry:1", 3)
    billable = render_time_activity(line(description="x" * 5000), IDS, key=key)
    assert billable["BillableStatus"] == "Billable" and billable["HourlyRate"] == Decimal("95.50")
    assert marked_keys(billable["Description"]) == [key] and len(billable["Description"]) <= DESCRIPTION_LIMIT
    internal = render_time_activity(line(billable=False), IDS, key=key, include_description=False)
    assert internal["BillableStatus"] == "NotBillable" and "HourlyRate" not in internal
    assert internal["Description"] == f"[hb:{key}]"
    employee = render_time_activity(line(), IDS, key=key, name_of="Employee")
    assert employee["NameOf"] == "Employee" and "EmployeeRef" in employee and "VendorRef" not in employee


def test_item_faults_become_failed_receipts_and_deleting_a_vanished_record_is_ok(
    mock: respx.MockRouter, clock: FakeClock
) -> None:
    stale = {"Error": [{"Message": "Stale Object Error", "Detail": "SyncToken is 3", "code": "5010"}]}
    gone = {"Error": [{"Message": "Object Not Found", "code": "610"}], "type": "ValidationFault"}
    mock.get(f"{API}/query").mock(side_effect=query_answer)
    mock.post(f"{API}/batch").respond(
        json={
            "BatchItemResponse": [
                {"bId": "0", "Fault": {**stale, "type": "ValidationFault"}},
                {"bId": "1", "Fault": gone},
            ]
        }
    )
    update = Op.for_line("update", line(1, version=2), remote_id="41", sync_token="1")
    delete = Op.for_line("delete", line(2, version=3), remote_id="42", sync_token="0")
    with make_sink(clock) as sink:
        receipts = {r.idempotency_key: r for r in sink.push([update, delete])}
    assert receipts[update.idempotency_key].status == "failed"
    assert "Stale Object Error" in str(receipts[update.idempotency_key].error)
    assert receipts[delete.idempotency_key].status == "ok"


def test_update_without_sync_token_fails_before_sending(clock: FakeClock) -> None:
    with respx.mock(assert_all_mocked=True), make_sink(clock) as sink:
        [receipt] = list(sink.push([Op.for_line("update", line(version=2), remote_id="41")]))
    assert receipt.status == "failed" and "SyncToken" in str(receipt.error)


def test_timeout_after_sending_gives_unknown_and_is_not_resent(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock.get(f"{API}/query").mock(side_effect=query_answer)
    write = mock.post(f"{API}/timeactivity").mock(side_effect=httpx.ReadTimeout("read timed out"))
    with make_sink(clock) as sink:
        [receipt] = list(sink.push([Op.for_line("create", line())]))
    assert receipt.status == "unknown" and write.call_count == 1


def test_connection_refused_is_retried_because_nothing_was_sent(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock.get(f"{API}/query").mock(side_effect=query_answer)
    write = mock.post(f"{API}/timeactivity").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(200, json={"TimeActivity": {"Id": "5", "SyncToken": "0"}}),
        ]
    )
    with make_sink(clock) as sink:
        [receipt] = list(sink.push([Op.for_line("create", line())]))
    assert receipt.status == "ok" and receipt.remote_id == "5" and write.call_count == 2


def test_429_without_retry_after_waits_out_the_minute(mock: respx.MockRouter, clock: FakeClock) -> None:
    mock.get(f"{API}/query").mock(side_effect=query_answer)
    throttled = {"Fault": {"Error": [{"Message": "ThrottleExceeded", "code": "003001"}], "type": "ThrottleExceeded"}}
    mock.post(f"{API}/timeactivity").mock(
        side_effect=[httpx.Response(429, json=throttled), httpx.Response(200, json={"TimeActivity": {"Id": "5"}})]
    )
    start = clock.now
    with make_sink(clock, per_minute=500) as sink:
        [receipt] = list(sink.push([Op.for_line("create", line())]))
        assert sink.stats()["throttled"] == 1
    assert receipt.status == "ok" and clock.now - start >= 60.0


def test_batch_items_count_against_the_quota_and_batches_per_minute_hold(
    mock: respx.MockRouter, clock: FakeClock
) -> None:
    mock.get(f"{API}/query").mock(side_effect=query_answer)
    batch = mock.post(f"{API}/batch").mock(side_effect=batch_answer)
    ops = [Op.for_line("create", line(i)) for i in range(82)]
    start = clock.now
    with make_sink(clock, batches=40, batch_size=2) as sink:
        list(sink.push(ops))
    assert batch.call_count == 41 and clock.now - start >= 60.0  # the 41st batch waits for the next minute
    clock2 = FakeClock()
    start = clock2.now
    with make_sink(clock2, per_minute=60) as sink:
        list(sink.push(ops[:2]))  # warms the name cache
        list(sink.push(ops[2:62]))  # two batches of 30 items = 60 requests
    assert clock2.now - start >= 55.0


def test_a_retried_batch_takes_every_item_permit_again(mock: respx.MockRouter, clock: FakeClock) -> None:
    # QuickBooks counts a batch's items on every attempt, a throttled one too: the retry must pay
    # for all of them again, or the limiter falls behind QuickBooks' own count and 429s follow.
    mock.get(f"{API}/query").mock(side_effect=query_answer)
    throttled = {"Fault": {"Error": [{"Message": "ThrottleExceeded", "code": "003001"}], "type": "ThrottleExceeded"}}
    answers = iter([httpx.Response(429, json=throttled, headers={"Retry-After": "1"})])

    def answer(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or batch_answer(request)

    mock.post(f"{API}/batch").mock(side_effect=answer)
    limiter = RateLimiter(1e6, clock=clock)
    sink = QuickBooksSink(
        QuickBooksConfig(realm_id=REALM, base_url=BASE, access_token=SecretStr(TOKEN)),
        limiter=limiter,
        batch_limiter=RateLimiter(1e6, clock=clock),
        sleep=clock.sleep,
    )
    with sink:
        list(sink.push([Op.for_line("create", line(i)) for i in range(30)]))
    batch_permits = len(limiter._granted) - limiter_reads(mock)
    assert batch_permits == 2 * 30


def limiter_reads(mock: respx.MockRouter) -> int:
    """Permits the name lookups took (one per query)."""
    return sum(1 for call in mock.calls if call.request.method == "GET")


def test_refused_credential_raises_without_leaking_the_token(mock: respx.MockRouter, clock: FakeClock) -> None:
    fault = {"fault": {"error": [{"message": f"AuthenticationFailed token={TOKEN}", "code": "3200"}]}}
    mock.get(f"{API}/query").respond(401, json=fault)
    with make_sink(clock) as sink, pytest.raises(ConfigError) as caught:
        list(sink.push([Op.for_line("create", line())]))
    assert "HOURBRIDGE_QUICKBOOKS__ACCESS_TOKEN" in caught.value.message and TOKEN not in caught.value.message


def test_token_provider_is_asked_on_every_request(mock: respx.MockRouter, clock: FakeClock) -> None:
    tokens = iter(["tok_first_aaaa", "tok_second_bbbb"])
    company = mock.get(f"{API}/companyinfo/{REALM}").respond(json={"CompanyInfo": {"Id": "1"}})
    settings = QuickBooksConfig(realm_id=REALM, base_url=BASE)
    with QuickBooksSink(settings, token=lambda: next(tokens), sleep=clock.sleep) as sink:
        sink.check()
        sink.check()
    assert [c.request.headers["Authorization"] for c in company.calls] == [
        "Bearer tok_first_aaaa",
        "Bearer tok_second_bbbb",
    ]


def test_no_token_is_a_config_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="HOURBRIDGE_QUICKBOOKS__ACCESS_TOKEN"):
        QuickBooksSink(QuickBooksConfig(realm_id=REALM, base_url=BASE))


def test_find_matches_the_marker_among_the_days_records(mock: respx.MockRouter, clock: FakeClock) -> None:
    target = line(4)
    key = idempotency_key("quickbooks", target.line_key, 1)
    rows = [
        {"Id": "8", "SyncToken": "0", "Description": "[hb:00000000-0000-5000-8000-000000000000] other"},
        {"Id": "9", "SyncToken": "2", "Description": f"[hb:{key}] Homepage build"},
    ]
    query = mock.get(f"{API}/query").respond(json={"QueryResponse": {"TimeActivity": rows}})
    with make_sink(clock) as sink:
        found = sink.find(key, target)
        missing = sink.find(idempotency_key("quickbooks", "nope", 1), target)
    assert found is not None and (found.remote_id, found.sync_token, found.status) == ("9", "2", "ok")
    assert missing is None
    statement = parse_qs(urlsplit(str(query.calls[0].request.url)).query)["query"][0]
    assert "FROM TimeActivity WHERE TxnDate = '2026-11-03'" in statement


def test_holdings_query_the_txn_date_range_a_thousand_at_a_time(mock: respx.MockRouter, clock: FakeClock) -> None:
    def key(n: int) -> str:
        return idempotency_key("quickbooks", f"entry:{n}", 1)

    first = [
        {
            "Id": str(n),
            "TxnDate": f"2026-11-{1 + n % 30:02d}",
            "Hours": 1,
            "Minutes": 30,
            # Every other record was keyed in by hand: no marker, not ours.
            "Description": f"[hb:{key(n)}] work" if n % 2 == 0 else "entered by hand",
        }
        for n in range(1000)
    ]
    second = [
        {
            "Id": "1000",
            "TxnDate": "2026-11-30",
            "Hours": 0,
            "Minutes": 2,
            "Seconds": 30,
            "Description": f"[hb:{key(1000)}]",
        },
        {"Id": "1001", "TxnDate": "2026-11-30", "Hours": 3, "Minutes": 0},
        first[0],  # a record the shifted page boundary shows twice
    ]
    query = mock.get(f"{API}/query").mock(
        side_effect=[
            httpx.Response(200, json={"QueryResponse": {"TimeActivity": first}}),
            httpx.Response(200, json={"QueryResponse": {"TimeActivity": second}}),
        ]
    )
    with make_sink(clock) as sink:
        held = list(sink.holdings(date(2026, 11, 1), date(2026, 11, 30), []))
    statements = [parse_qs(urlsplit(str(c.request.url)).query)["query"][0] for c in query.calls]
    where = "SELECT * FROM TimeActivity WHERE TxnDate >= '2026-11-01' AND TxnDate <= '2026-11-30'"
    assert statements == [f"{where} STARTPOSITION 1 MAXRESULTS 1000", f"{where} STARTPOSITION 1001 MAXRESULTS 1000"]
    assert len(held) == 501 and len({h.remote_id for h in held}) == 501
    assert {h.idempotency_key for h in held} == {key(n) for n in range(0, 1001, 2)}
    assert held[0] == Holding(key(0), "0", date(2026, 11, 1), 90)
    assert held[-1] == Holding(key(1000), "1000", date(2026, 11, 30), 3)  # 150 s rounds half-up to 3 minutes


def test_holdings_of_an_empty_range_ask_nothing(clock: FakeClock) -> None:
    with respx.mock(assert_all_mocked=True), make_sink(clock) as sink:
        assert list(sink.holdings(date(2026, 11, 30), date(2026, 11, 1), [line()])) == []


def test_a_query_that_answers_the_same_full_page_again_stops(mock: respx.MockRouter, clock: FakeClock) -> None:
    from connectors.errors import PayloadError

    page = [{"Id": str(n), "TxnDate": "2026-11-03"} for n in range(1000)]
    query = mock.get(f"{API}/query").mock(
        return_value=httpx.Response(200, json={"QueryResponse": {"TimeActivity": page}})
    )
    with make_sink(clock) as sink, pytest.raises(PayloadError, match="same page twice"):
        list(sink.holdings(date(2026, 11, 1), date(2026, 11, 30), []))
    assert query.call_count == 2
