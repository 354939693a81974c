"""The validators find what they are there to find: each is shown a wrong exchange and a right one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.sandbox._recording import Exchange
from tests.conformance import monday_check, openapi_check, qbo_check, specs

JSON = (("Content-Type", "application/json; charset=utf-8"),)


@pytest.fixture(autouse=True)
def _specs() -> None:
    specs.require_specs()


def exchange(
    method: str,
    path: str,
    *,
    query: str = "",
    body: Any = None,
    answer: Any = None,
    status: int = 200,
    headers: tuple[tuple[str, str], ...] = (),
    route: str = "",
) -> Exchange:
    return Exchange(
        host="127.0.0.1:1",
        route=route,
        method=method,
        path=path,
        query=query,
        request_headers=headers + (JSON if body is not None else ()),
        request_body=b"" if body is None else json.dumps(body).encode(),
        status=status,
        response_headers=JSON,
        response_body=b"" if answer is None else json.dumps(answer).encode(),
    )


CLICKUP_AUTH = (("Authorization", "pk_1"),)
ENTRIES = "/api/v2/team/9015000001/time_entries"


def clickup_requests(query: str) -> list[str]:
    api = specs.openapi(specs.CLICKUP)
    return openapi_check.request_problems(
        api, exchange("GET", ENTRIES, query=query, headers=CLICKUP_AUTH), "https://api.clickup.com"
    )


def test_openapi_requests_are_judged_by_parameter_types_and_the_assignee_relaxation_stays_narrow() -> None:
    assert clickup_requests("start_date=1789862400000&assignee=81000001,81000002") == []
    assert clickup_requests("start_date=yesterday")  # a number in the spec
    assert clickup_requests("assignee=81000001;81000002")  # a comma list, nothing else
    assert clickup_requests("include_task_tags=perhaps")


def test_openapi_flags_a_path_the_spec_does_not_have_and_an_answer_of_the_wrong_shape() -> None:
    api = specs.openapi(specs.ASANA)
    wrong_path = exchange("GET", "/api/1.0/time_tracking_entry", headers=(("Authorization", "Bearer t"),))
    assert "not an operation" in openapi_check.request_problems(api, wrong_path, "https://app.asana.com")[0]
    me = {"gid": "1", "resource_type": "user", "name": "Zoë"}
    good = exchange("GET", "/api/1.0/users/me", answer={"data": me}, headers=(("Authorization", "Bearer t"),))
    bad = exchange("GET", "/api/1.0/users/me", answer={"data": [me]}, headers=(("Authorization", "Bearer t"),))
    answers = specs.openapi(specs.ASANA, answers=True)
    assert openapi_check.response_problems(answers, good, "https://app.asana.com") == []
    assert openapi_check.response_problems(answers, bad, "https://app.asana.com")


def _invoices(date: str) -> Exchange:
    invoice = {"Type": "ACCPAY", "Contact": {"ContactID": "5d5c24d5-6929-5f39-9c39-fe39aae4227e"}, "Date": date}
    headers = (("Authorization", "Bearer t"), ("Xero-Tenant-Id", "b2d1a7a4-5d3e-4c55-9a43-7c2f0e1d9a10"))
    return exchange("GET", "/api.xro/2.0/Invoices", answer={"Invoices": [invoice]}, headers=headers)


def test_xero_answers_must_carry_dotnet_dates_where_the_document_marks_them() -> None:
    answers = specs.openapi(specs.XERO_ACCOUNTING, answers=True)
    xero = "https://api.xero.com"
    assert openapi_check.response_problems(answers, _invoices("/Date(1790726400000+0000)/"), xero) == []
    problems = openapi_check.response_problems(answers, _invoices("2026-09-30"), xero)
    assert problems and "Date" in problems[0]


MONDAY_QUERY = "query ($ids: [ID!], $limit: Int) { users(ids: $ids, limit: $limit) { id name } }"


def monday(query: str, variables: dict[str, Any], answer: Any = None) -> Exchange:
    return exchange("POST", "/v2", body={"query": query, "variables": variables}, answer=answer)


def test_monday_requests_are_validated_with_their_variables() -> None:
    schema = specs.monday_schema()
    assert monday_check.request_problems(schema, monday(MONDAY_QUERY, {"ids": ["1"], "limit": 5})) == []
    assert monday_check.request_problems(schema, monday(MONDAY_QUERY.replace("name", "nickname"), {}))
    assert monday_check.request_problems(schema, monday(MONDAY_QUERY, {"limit": "five"}))
    assert monday_check.request_problems(schema, monday(MONDAY_QUERY, {"page": 2}))  # not declared


@pytest.mark.parametrize(
    ("users", "ok"),
    [
        ([{"id": "1", "name": "Zoë"}], True),
        ([{"id": 1, "name": "Zoë"}], False),  # an ID is a string on the wire
        ([{"id": "1"}], False),  # a field the query asked for is missing
        ([{"id": "1", "name": "Zoë", "email": "z@example.com"}], False),  # one it did not ask for
    ],
)
def test_monday_answers_must_survive_the_schema_unchanged(users: list[dict[str, Any]], ok: bool) -> None:
    answer = monday(MONDAY_QUERY, {}, answer={"data": {"users": users}})
    assert (monday_check.answer_problems(specs.monday_schema(), answer) == []) is ok


TIME_ACTIVITY = {
    "TxnDate": "2026-09-23",
    "NameOf": "Vendor",
    "VendorRef": {"value": "54", "name": "Priya Raman"},
    "CustomerRef": {"value": "1"},
    "BillableStatus": "Billable",
    "HourlyRate": 110.0,
    "Hours": 2,
    "Minutes": 15,
    "Description": "[hb:1] Contoso data warehouse",
}


@pytest.mark.parametrize(
    ("change", "ok"),
    [
        ({}, True),
        ({"NameOf": "Robot"}, False),  # not in TimeActivityTypeEnum
        ({"TxnDate": "23/09/2026"}, False),  # not an xs:date
        ({"Hourz": 2}, False),  # not an element of TimeActivity
        ({"VendorRef": "54"}, False),  # a reference is {"value": ...}
        ({"BillableStatus": "Maybe"}, False),
    ],
)
def test_quickbooks_time_activities_are_validated_against_the_xsd(change: dict[str, Any], ok: bool) -> None:
    payload = {**TIME_ACTIVITY, **change}
    write = exchange("POST", "/v3/company/1/timeactivity", body=payload, route="timeactivity.create")
    assert (qbo_check.request_problems(specs.quickbooks_xsd(), write) == []) is ok


def test_quickbooks_queries_use_and_and_in_never_or() -> None:
    assert qbo_check.query_problems("SELECT * FROM Vendor WHERE DisplayName IN ('A','B\\'s') STARTPOSITION 1") == []
    assert qbo_check.query_problems("select * from TimeActivity where TxnDate >= '2026-09-01' and Id = '3'") == []
    problems = qbo_check.query_problems("SELECT * FROM Vendor WHERE DisplayName = 'A' OR DisplayName = 'B'")
    assert problems and "OR is not supported" in problems[0]
