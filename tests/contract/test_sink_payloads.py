"""Sink payloads checked against the official specs: the QuickBooks XSD and Xero's OpenAPI documents."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from connectors.delivery import Line, Op, encode_json, idempotency_key
from connectors.quickbooks.render import QuickBooksIds, render_batch, render_delete, render_time_activity
from connectors.xero.render import BillIds, bill_number, render_bill, render_line_item, render_time_entry

SPECS = Path(__file__).resolve().parents[3] / "shared" / "specs"
XSD = SPECS / "qbo-v3-xsd"
XS = "{http://www.w3.org/2001/XMLSchema}"
UUID_A = "740add2a-a703-4b8a-a670-1093919c2040"
UUID_B = "7be77337-feec-4458-bb1b-dbaa5a4aafce"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"official spec {path.name} not found under {path.parent} (the shared specs are not checked out)")
    return path


def line(n: int = 0, **extra: Any) -> Line:
    fields: dict[str, Any] = {
        "sink": "test",
        "line_key": f"entry:clickup:9001:{n}",
        "version": 1,
        "work_date": date(2026, 11, 3),
        "period_end": date(2026, 11, 30),
        "person": "Zoë Müller",
        "payee": "Zoë Müller",
        "code": "ACME-WEB",
        "client": "Acme",
        "seconds": 2 * 3600 + 17 * 60 + 44,
        "billable": True,
        "hourly_rate": Decimal("120.25"),
        "cost_center": "CC-100",
        "description": "Homepage build — ünïcode ok",
    }
    fields.update(extra)
    return Line(**fields)


# --------------------------------------------------------------------------- QuickBooks XSD


@cache
def xsd_trees() -> dict[str, ET.Element]:
    return {
        name: ET.parse(need(XSD / name)).getroot()  # noqa: S314  (a vendor schema file from the repo, not input)
        for name in ("Finance.xsd", "IntuitBaseTypes.xsd", "IntuitRestServiceDef.xsd")
    }


def complex_type(name: str) -> ET.Element:
    for root in xsd_trees().values():
        for node in root.findall(f"{XS}complexType"):
            if node.get("name") == name:
                return node
    raise LookupError(name)


def enumeration(name: str) -> list[str]:
    for root in xsd_trees().values():
        for node in root.findall(f"{XS}simpleType"):
            if node.get("name") == name:
                return [e.get("value", "") for e in node.iter(f"{XS}enumeration")]
    raise LookupError(name)


def sequence_elements(node: ET.Element) -> Iterator[tuple[str, str, str | None]]:
    """(name, type, choice group) of the elements of a complex type's own sequence, in order."""
    for sequence in node.iter(f"{XS}sequence"):
        for child in sequence:
            if child.tag == f"{XS}element":
                yield child.get("name", ""), child.get("type", ""), None
            elif child.tag == f"{XS}choice":
                group = ",".join(e.get("name", "") for e in child.findall(f"{XS}element"))
                for element in child.findall(f"{XS}element"):
                    yield element.get("name", ""), element.get("type", ""), group
        break  # nested sequences belong to nested types


def time_activity_elements() -> list[tuple[str, str, str | None]]:
    ta = complex_type("TimeActivity")
    extension = next(ta.iter(f"{XS}extension"))
    base = complex_type(extension.get("base", ""))
    return [*sequence_elements(base), *sequence_elements(extension)]


def check_value(name: str, xsd_type: str, value: Any) -> None:
    local = xsd_type.split(":")[-1]
    if xsd_type == "xs:date":
        date.fromisoformat(value)
    elif xsd_type == "xs:dateTime":
        datetime.fromisoformat(value)
    elif xsd_type == "xs:int":
        assert isinstance(value, int) and not isinstance(value, bool), name
    elif xsd_type == "xs:decimal":
        assert isinstance(value, (int, Decimal)) and not isinstance(value, bool), name
    elif xsd_type == "xs:boolean":
        assert isinstance(value, bool), name
    elif xsd_type in ("xs:string", "id"):
        assert isinstance(value, str), name
    elif local == "ReferenceType":
        # simpleContent (the id, JSON "value") with optional name and type attributes.
        assert isinstance(value, dict) and isinstance(value.get("value"), str) and value["value"], name
        assert set(value) <= {"value", "name", "type"}, name
    elif local.endswith("Enum"):
        assert value in enumeration(local), f"{name}={value!r} not in {local}"
    else:
        raise AssertionError(f"{name}: no check for XSD type {xsd_type}")


def assert_time_activity(body: dict[str, Any], *, create: bool) -> None:
    declared = time_activity_elements()
    order = [name for name, _, _ in declared]
    types = {name: xsd_type for name, xsd_type, _ in declared}
    for key, value in body.items():
        assert key in types, f"{key} is not declared in TimeActivity or IntuitEntity"
        check_value(key, types[key], value)
    sent = [k for k in order if k in body]
    assert list(body) == sent, "elements must follow the XSD sequence"
    groups = {group for _, _, group in declared if group}
    for group in groups:
        assert sum(1 for name in group.split(",") if name in body) <= 1, f"only one of {group}"
    if "Minutes" in body:
        assert 0 <= body["Minutes"] <= 59  # "valid values are 0 - 59"
    if create:
        # Required on create per the XSD notes: the person (NameOf + its ref) and the service item.
        assert body["NameOf"] in enumeration("TimeActivityTypeEnum")
        assert f"{body['NameOf']}Ref" in body and "ItemRef" in body and "TxnDate" in body
        assert "Hours" in body and "Minutes" in body


IDS = QuickBooksIds(payee="56", customer="3", item="9", klass="5000000001", department="2")


@pytest.mark.parametrize(
    "variant",
    [
        {"name_of": "Vendor"},
        {"name_of": "Employee", "include_description": False},
        {"name_of": "Vendor", "line": {"billable": False, "hourly_rate": None, "description": None}},
        {"name_of": "Vendor", "line": {"seconds": 59}},
    ],
)
def test_time_activity_create_matches_the_xsd(variant: dict[str, Any]) -> None:
    key = idempotency_key("quickbooks", "entry:1", 1)
    body = render_time_activity(
        line(**variant.get("line", {})),
        IDS,
        key=key,
        name_of=variant["name_of"],
        include_description=variant.get("include_description", True),
    )
    assert_time_activity(body, create=True)


def test_time_activity_update_and_delete_match_the_xsd() -> None:
    key = idempotency_key("quickbooks", "entry:1", 2)
    update = render_time_activity(line(), IDS, key=key, remote_id="41", sync_token="3")
    assert_time_activity(update, create=False)
    assert (update["Id"], update["SyncToken"]) == ("41", "3")
    assert_time_activity(render_delete("41", "3"), create=False)


def test_batch_request_matches_the_rest_service_definition() -> None:
    key = idempotency_key("quickbooks", "entry:1", 1)
    ops = [Op.for_line("create", line(i)) for i in range(3)]
    body = render_batch([(str(i), op, render_time_activity(op.line, IDS, key=key)) for i, op in enumerate(ops)])
    item_type = complex_type("BatchItemRequest")
    attributes = {a.get("name") for a in item_type.iter(f"{XS}attribute")}
    operations = enumeration("OperationEnum")
    for item in body["BatchItemRequest"]:
        assert set(item) - {"TimeActivity"} <= attributes
        assert item["operation"] in operations and len(item["bId"]) <= 10
    wrapper = complex_type("IntuitBatchRequest")
    assert [e.get("name") for e in wrapper.iter(f"{XS}element")] == ["BatchItemRequest"]


# --------------------------------------------------------------------------- Xero OpenAPI


@cache
def openapi(name: str) -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with need(SPECS / name).open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=loader)  # noqa: S506  (a safe loader either way)


def validate(spec: dict[str, Any], schema_name: str, payload: Any) -> None:
    """Validate the wire JSON against a component schema, then require every key to be declared and writable."""
    wire = json.loads(encode_json(payload))
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": spec["components"]}
    Draft202012Validator(schema, format_checker=FormatChecker()).validate(wire)
    assert_declared(spec, spec["components"]["schemas"][schema_name], wire, schema_name)


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def assert_declared(spec: dict[str, Any], schema: dict[str, Any], value: Any, where: str) -> None:
    schema = resolve(spec, schema)
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            assert key in schema["properties"], f"{where}.{key} is not in the spec"
            prop = schema["properties"][key]
            assert not resolve(spec, prop).get("readOnly", prop.get("readOnly")), f"{where}.{key} is read-only"
            assert_declared(spec, prop, item, f"{where}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            assert_declared(spec, schema["items"], item, f"{where}[]")


def test_time_entry_matches_the_projects_spec() -> None:
    spec = openapi("xero-projects.yaml")
    key = idempotency_key("xero", "entry:1", 1)
    body = render_time_entry(line(), key=key, user_id=UUID_A, task_id=UUID_B, zone=ZoneInfo("Pacific/Auckland"))
    validate(spec, "TimeEntryCreateOrUpdate", body)
    schema = spec["components"]["schemas"]["TimeEntryCreateOrUpdate"]
    assert set(schema["required"]) <= set(body)
    low, high = map(int, re.findall(r"\d+", schema["properties"]["duration"]["description"])[:2])
    assert low <= body["duration"] <= high
    assert body["dateUtc"].endswith("Z")


def test_projects_writes_declare_the_headers_we_send() -> None:
    spec = openapi("xero-projects.yaml")
    params = spec["components"]["parameters"]
    assert params["idempotencyKey"]["name"] == "Idempotency-Key"
    assert params["requiredHeader"]["name"] == "Xero-Tenant-Id" and params["requiredHeader"]["required"]
    paths = spec["paths"]
    for path, method in (("/Projects/{projectId}/Time", "post"), ("/Projects/{projectId}/Time/{timeEntryId}", "put")):
        refs = [p.get("$ref", "") for p in paths[path][method]["parameters"]]
        assert "#/components/parameters/idempotencyKey" in refs
        assert "#/components/parameters/requiredHeader" in [p.get("$ref") for p in paths[path]["parameters"]]


def bill_payload(status: str = "DRAFT", invoice_id: str | None = None) -> dict[str, Any]:
    ids = BillIds(contact_id=UUID_A, account_code="400", tracking=(("Cost Center", "CC-100"), ("Region", "North")))
    items = [render_line_item(line(i, code=f"C{i}"), ids, key=idempotency_key("xero", f"agg:{i}", 1)) for i in range(2)]
    number = bill_number(line(), "Zoë Müller")
    bill = render_bill(
        line(),
        ids,
        items,
        number=number,
        due_days=14,
        line_amount_types="Exclusive",
        invoice_id=invoice_id,
        status=status,
    )
    return {"Invoices": [bill]}


@pytest.mark.parametrize(("status", "invoice_id"), [("DRAFT", None), ("DRAFT", UUID_B), ("DELETED", UUID_B)])
def test_bills_match_the_accounting_spec(status: str, invoice_id: str | None) -> None:
    spec = openapi("xero_accounting.yaml")
    payload = bill_payload(status, invoice_id)
    validate(spec, "Invoices", payload)
    invoice = payload["Invoices"][0]
    schema = spec["components"]["schemas"]["Invoice"]["properties"]
    assert invoice["Type"] in schema["Type"]["enum"] and invoice["Status"] in schema["Status"]["enum"]
    assert len(invoice["InvoiceNumber"]) <= schema["InvoiceNumber"]["maxLength"]
    for item in invoice["LineItems"]:
        assert len(item["Tracking"]) <= 2  # "a maximum of 2 <TrackingCategory> elements"
        assert -item["Quantity"].as_tuple().exponent <= 4  # unitdp=4


def test_bill_writes_declare_idempotency_unitdp_and_summarize_errors() -> None:
    spec = openapi("xero_accounting.yaml")
    operations = spec["paths"]["/Invoices"]
    for method in ("put", "post"):
        refs = {p.get("$ref", "").rsplit("/", 1)[-1] for p in operations[method]["parameters"]}
        assert {"idempotencyKey", "unitdp", "summarizeErrors"} <= refs
    names = {p.get("name") for p in operations["get"]["parameters"] if "name" in p}
    assert {"InvoiceNumbers", "IDs"} <= names  # what find and push look bills up by
