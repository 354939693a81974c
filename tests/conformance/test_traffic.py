"""Every request the connectors sent and every answer the emulators gave conforms to the official specs.

One test per endpoint and side (request, answer), so a failure names the endpoint; ``KNOWN`` marks
what fails today because it is being fixed elsewhere (strict: once fixed, the mark must go).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from connectors.sandbox._recording import Exchange
from tests.conformance import monday_check, openapi_check, qbo_check, specs

# The vendor's own host for each OpenAPI document: paths are matched against the spec's server URL.
OPENAPI = {
    "asana": (specs.ASANA, "https://app.asana.com"),
    "clickup": (specs.CLICKUP, "https://api.clickup.com"),
    "xero-projects": (specs.XERO_PROJECTS, "https://api.xero.com"),
    "xero-accounting": (specs.XERO_ACCOUNTING, "https://api.xero.com"),
    "xero-identity": (specs.XERO_IDENTITY, "https://api.xero.com"),
}

# Every endpoint the scenarios reach, by API and the emulator's route name.
ENDPOINTS: dict[str, tuple[str, ...]] = {
    "asana": (
        "workspaces.list",
        "workspaces.users",
        "time_tracking_entries.list",
        "time_tracking_entries.get",
        "timesheet_approval_statuses.list",
        "tasks.list",
    ),
    "clickup": ("user.get", "team.list", "time_entries.list", "team.tasks"),
    "monday": ("graphql",),
    "quickbooks": ("query", "batch"),
    "xero-projects": ("projects.list", "projects.users", "projects.tasks", "time.create", "time.update", "time.list"),
    "xero-accounting": ("contacts.list", "tracking.list", "invoices.list", "invoices.put"),
    "xero-identity": ("connections",),
}
# Recorded but not judged: no spec of these is among ../shared/specs.
UNSPECIFIED = {"oauth": ("oauth.authorize", "oauth.token")}

# Known failures, each being fixed in another item of issue 12: (api, route, side) -> what is invalid.
KNOWN: dict[tuple[str, str, str], str] = {}


def _cases(side: str) -> list[Any]:
    cases = []
    for api, routes in ENDPOINTS.items():
        for route in routes:
            known = KNOWN.get((api, route, side))
            marks = [pytest.mark.xfail(strict=True, reason=known)] if known else []
            cases.append(pytest.param(api, route, id=f"{api}:{route}", marks=marks))
    return cases


def _exchanges(traffic: dict[str, list[Exchange]], api: str, route: str) -> list[Exchange]:
    found = [e for e in traffic.get(api, []) if e.route == route]
    assert found, f"the scenarios sent nothing to {api} {route}; the endpoint table is out of date"
    return found


def _request_checker(api: str) -> Callable[[Exchange], list[str]]:
    if api in OPENAPI:
        name, host = OPENAPI[api]
        validator = specs.openapi(name)
        return lambda exchange: openapi_check.request_problems(validator, exchange, host)
    if api == "monday":
        schema = specs.monday_schema()
        return lambda exchange: monday_check.request_problems(schema, exchange)
    xsd = specs.quickbooks_xsd()
    return lambda exchange: qbo_check.request_problems(xsd, exchange)


def _answer_checker(api: str) -> Callable[[Exchange], list[str]]:
    if api in OPENAPI:
        name, host = OPENAPI[api]
        validator = specs.openapi(name, answers=True)
        return lambda exchange: openapi_check.response_problems(validator, exchange, host)
    if api == "monday":
        schema = specs.monday_schema()
        return lambda exchange: monday_check.answer_problems(schema, exchange)
    xsd = specs.quickbooks_xsd()
    return lambda exchange: qbo_check.answer_problems(xsd, exchange)


def _report(problems: list[str], checked: int) -> str:
    shown = "\n".join(problems[:5])
    more = f"\n... and {len(problems) - 5} more" if len(problems) > 5 else ""
    return f"{len(problems)} problems in {checked} exchanges:\n{shown}{more}"


@pytest.mark.parametrize(("api", "route"), _cases("request"))
def test_requests_conform_to_the_spec(traffic: dict[str, list[Exchange]], api: str, route: str) -> None:
    exchanges = _exchanges(traffic, api, route)
    check = _request_checker(api)
    problems = [problem for exchange in exchanges for problem in check(exchange)]
    assert not problems, _report(problems, len(exchanges))


@pytest.mark.parametrize(("api", "route"), _cases("answer"))
def test_answers_conform_to_the_spec(traffic: dict[str, list[Exchange]], api: str, route: str) -> None:
    exchanges = _exchanges(traffic, api, route)
    check = _answer_checker(api)
    problems = [problem for exchange in exchanges for problem in check(exchange)]
    assert not problems, _report(problems, len(exchanges))


def test_every_exchange_is_judged(traffic: dict[str, list[Exchange]]) -> None:
    """Nothing the connectors sent escapes the suite: each exchange belongs to an endpoint in the table."""
    judged = {(api, route) for api, routes in {**ENDPOINTS, **UNSPECIFIED}.items() for route in routes}
    unjudged = sorted(
        {f"{api} {e.route or '(no route)'}: {e.method} {e.path}" for api, found in traffic.items() for e in found}
        - {
            f"{api} {e.route}: {e.method} {e.path}"
            for api, found in traffic.items()
            for e in found
            if (api, e.route) in judged
        }
    )
    assert not unjudged, "exchanges no spec judges (add them to ENDPOINTS):\n" + "\n".join(unjudged)
    assert sum(len(found) for found in traffic.values()) > 80  # a demo's worth, not a handful


def test_the_scenarios_were_answered_without_errors(traffic: dict[str, list[Exchange]]) -> None:
    """Error answers would be judged against error schemas only; the scenarios must exercise the happy paths."""
    failed = [f"{api}: {e.label}" for api, found in traffic.items() for e in found if e.status >= 400]
    assert not failed, "\n".join(failed[:10])
