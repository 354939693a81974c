"""The one place where the conformance suite departs from the official specs: each departure, its reason and source.

A relaxation loosens a spec where the document itself is wrong about the real service; a
tightening makes a check stricter where the document says more than its JSON schema can express
(a vendor extension). Each is applied to the parsed document before validation, touches only
the places it names, and fails loudly when those places are no longer there (the vendor fixed
the document: drop the entry). Nothing else in ``tests/conformance`` edits a spec.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Json = Any


@dataclass(frozen=True, slots=True)
class Departure:
    """One documented change to one spec document."""

    spec: str  # file name under ../shared/specs
    kind: str  # "relaxation" (the document is wrong) or "tightening" (the document says more than its schema)
    what: str
    why: str
    source: str
    apply: Callable[[Json], int]  # edits the parsed document in place; returns how many places it changed


def _walk(node: Json) -> Iterator[dict[str, Json]]:
    """Every mapping in a parsed document, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


# -- ClickUp ------------------------------------------------------------------------------------

_CLICKUP_TIME_ENTRIES = "/v2/team/{team_Id}/time_entries"


def _clickup_assignee_list(document: Json) -> int:
    parameters = document["paths"][_CLICKUP_TIME_ENTRIES]["get"]["parameters"]
    changed = 0
    for parameter in parameters:
        if parameter["name"] == "assignee" and parameter["in"] == "query":
            # A comma-separated list of numeric user ids, one or more.
            parameter["schema"] = {"type": "string", "pattern": r"^[0-9]+(,[0-9]+)*$"}
            changed += 1
    return changed


def _clickup_get_content_type(document: Json) -> int:
    changed = 0
    for item in document["paths"].values():
        operation = item.get("get")
        if operation is None:
            continue
        for parameter in operation.get("parameters", []):
            if (
                parameter["in"] == "header"
                and parameter["name"].lower() == "content-type"
                and parameter.get("required")
            ):
                parameter["required"] = False
                changed += 1
    return changed


_CLICKUP_TASKS = "/v2/team/{team_Id}/task"
# Task fields real answers carry as null (issue 12 item 5), and that the same document types as
# ["string", "null"] (or shows as null in its examples) in its other task schemas.
CLICKUP_NULLABLE_TASK_FIELDS = frozenset(
    {"custom_id", "date_closed", "parent", "priority", "due_date", "start_date", "points", "time_estimate"}
)


def _clickup_task_nulls(document: Json) -> int:
    changed = 0
    for path in (_CLICKUP_TIME_ENTRIES, _CLICKUP_TASKS):
        answer = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        for schema in _walk(answer):
            properties = schema.get("properties")
            if not isinstance(properties, dict) or "name" not in properties:
                continue  # only the task objects (they all have a name)
            for name in CLICKUP_NULLABLE_TASK_FIELDS & properties.keys():
                kind = properties[name].get("type")
                if isinstance(kind, str):
                    properties[name]["type"] = [kind, "null"]
                    changed += 1
    return changed


def _clickup_running_timer_end(document: Json) -> int:
    answer = document["paths"][_CLICKUP_TIME_ENTRIES]["get"]["responses"]["200"]["content"]["application/json"]
    entry = answer["schema"]["properties"]["data"]["items"]
    if "end" not in entry.get("required", []):
        return 0
    entry["required"] = [name for name in entry["required"] if name != "end"]
    # Every stopped entry still has its end; only a running one (negative duration) may lack it.
    entry["if"] = {"properties": {"duration": {"type": "string", "pattern": "^-"}}, "required": ["duration"]}
    entry["else"] = {"required": ["end"]}
    return 1


# -- Xero Accounting ----------------------------------------------------------------------------

_BOOLEAN_WORDS = {"true": True, "false": False}


def _xero_string_booleans(document: Json) -> int:
    changed = 0
    for schema in _walk(document.get("components", {}).get("schemas", {})):
        if schema.get("type") != "boolean":
            continue
        for key in ("default", "example"):
            value = schema.get(key)
            if isinstance(value, str) and value in _BOOLEAN_WORDS:
                schema[key] = _BOOLEAN_WORDS[value]
                changed += 1
    return changed


# Xero's .NET JSON dates: milliseconds since the epoch, with an optional offset that is always +0000.
XERO_MS_DATE = r"^/Date\(-?[0-9]+([+-][0-9]{4})?\)/$"


def _xero_ms_dates(document: Json) -> int:
    changed = 0
    for schema in _walk(document.get("components", {}).get("schemas", {})):
        if schema.get("type") == "string" and (schema.get("x-is-msdate") or schema.get("x-is-msdate-time")):
            schema["pattern"] = XERO_MS_DATE
            changed += 1
    return changed


# -- Xero Identity ------------------------------------------------------------------------------


def _xero_connections_lower_case(document: Json) -> int:
    if "/Connections" not in document["paths"] or "/connections" in document["paths"]:
        return 0
    document["paths"]["/connections"] = document["paths"].pop("/Connections")
    return 1


def _xero_connection_dates(document: Json) -> int:
    properties = document["components"]["schemas"]["Connection"]["properties"]
    changed = 0
    for name in ("createdDateUtc", "updatedDateUtc"):
        if properties[name].pop("format", None) == "date-time":
            # An ISO 8601 date and time, the UTC offset optional (Xero leaves it out: the name says UTC).
            properties[name]["pattern"] = (
                r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?$"
            )
            changed += 1
    return changed


CLICKUP = "clickup-api-v2-reference.json"
XERO_IDENTITY = "xero-identity.yaml"
XERO_ACCOUNTING = "xero_accounting.yaml"

RELAXATIONS: tuple[Departure, ...] = (
    Departure(
        spec=CLICKUP,
        kind="relaxation",
        what=f"GET {_CLICKUP_TIME_ENTRIES} `assignee`: a comma-separated list of user ids, not one number",
        why="The schema types it as one number, but the parameter's own description (and the API) takes "
        "`assignee=1234,9876`; the connector asks for every member in one call, as an admin token may.",
        source="the same parameter's description in clickup-api-v2-reference.json; docs/api-facts.md (ClickUp)",
        apply=_clickup_assignee_list,
    ),
    Departure(
        spec=CLICKUP,
        kind="relaxation",
        what="GET operations: the `Content-Type: application/json` header parameter is not required",
        why="The document marks a required Content-Type header on bodiless GETs (generated from a Postman "
        "collection); a GET has no content to type, and the API answers GETs without it.",
        source="RFC 9110 §8.3 (Content-Type describes the content; a GET sends none); clickup-api-v2-reference.json",
        apply=_clickup_get_content_type,
    ),
    Departure(
        spec=CLICKUP,
        kind="relaxation",
        what=f"GET {_CLICKUP_TIME_ENTRIES} and GET {_CLICKUP_TASKS} answers: the task fields "
        + ", ".join(sorted(CLICKUP_NULLABLE_TASK_FIELDS))
        + " may be null",
        why="These two operations' inline schemas type them as plain strings/numbers, but real answers carry "
        "null for a task without them, and the same document's other task schemas type them "
        '["string", "null"] and its examples show null.',
        source='clickup-api-v2-reference.json (e.g. its task examples: `"parent": null`, `"priority": null`); '
        "issue 12 item 5; docs/api-facts.md (ClickUp)",
        apply=_clickup_task_nulls,
    ),
    Departure(
        spec=CLICKUP,
        kind="relaxation",
        what=f"GET {_CLICKUP_TIME_ENTRIES} answers: a running timer (negative `duration`) has no `end`",
        why="The schema requires `end` on every entry, but a timer still running has not ended; the list "
        "includes it (overlap semantics) with a negative duration. Stopped entries must still carry `end`.",
        source="docs/api-facts.md (ClickUp: 'a negative duration means the timer is still running'); issue 12 item 6",
        apply=_clickup_running_timer_end,
    ),
    Departure(
        spec=XERO_ACCOUNTING,
        kind="relaxation",
        what="boolean properties whose `default`/`example` is the string 'false' take the boolean",
        why="With them the file is not a valid OpenAPI 3.0 document (openapi-spec-validator: \"'false' is not "
        "of type 'boolean'\", 23 places), so no validator can load it unmodified.",
        source="openapi-spec-validator on xero_accounting.yaml 16.1.0 (XeroAPI/Xero-OpenAPI @ e952d0bd)",
        apply=_xero_string_booleans,
    ),
    Departure(
        spec=XERO_IDENTITY,
        kind="relaxation",
        what="`GET /connections` is the same operation as the document's `/Connections`",
        why="The document spells the path with a capital C; the connector (and Xero's OAuth 2.0 guide) call "
        "https://api.xero.com/connections, and Xero routes paths without regard to case.",
        source="docs/api-facts.md (Xero: 'Tenants', GET https://api.xero.com/connections); "
        "connectors/xero/config.py (connections_url); case-insensitivity: unconfirmed beyond that usage",
        apply=_xero_connections_lower_case,
    ),
    Departure(
        spec=XERO_IDENTITY,
        kind="relaxation",
        what="`Connection.createdDateUtc`/`updatedDateUtc`: an ISO date-time whose UTC offset may be left out",
        why="The schema says `format: date-time` (RFC 3339, offset required), but Xero sends "
        "'2019-12-07T18:46:19.5165400' with no offset, as the document's own example of the answer shows.",
        source="xero-identity.yaml, the example of GET /Connections' 200 answer",
        apply=_xero_connection_dates,
    ),
    Departure(
        spec=XERO_ACCOUNTING,
        kind="tightening",
        what="string properties marked `x-is-msdate` / `x-is-msdate-time` must be `/Date(<ms>+0000)/` in answers",
        why="Xero's JSON answers carry .NET dates; the document says so only through its vendor extension, "
        "which JSON Schema ignores. Requests may send ISO dates, so this applies to answers only.",
        source="xero_accounting.yaml: the `x-is-msdate` extension and its answer examples (497 of the form "
        "`/Date(1550793549320+0000)/`); issue 12 item 6",
        apply=_xero_ms_dates,
    ),
)


def apply(spec: str, document: Json, *, kinds: tuple[str, ...] = ("relaxation",)) -> Json:
    """Apply this module's departures of ``kinds`` for ``spec`` to ``document`` (in place) and return it."""
    for departure in RELAXATIONS:
        if departure.spec != spec or departure.kind not in kinds:
            continue
        if departure.apply(document) == 0:
            raise AssertionError(
                f"{spec}: the {departure.kind} '{departure.what}' changed nothing; the document no longer has "
                "the problem, so remove it from tests/conformance/relaxations.py"
            )
    return document
