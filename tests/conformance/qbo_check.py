"""Validates recorded QuickBooks exchanges: entities against Intuit's XSD, queries against the query language.

QuickBooks' JSON is the XSD's XML with the element names as keys, so each JSON entity is converted
into the XML the XSD describes and validated with xmlschema. The conversion is guided by the XSD
itself: child elements are written in the order of the type's content model (JSON has no order,
XML does), a key the type does not declare is reported, a ``ReferenceType``-like simple content
takes ``value`` as its text and its other keys as attributes. Converting, rather than checking
names alone, lets the XSD judge everything it knows: required elements, cardinality, enumerations
(``NameOf``, ``BillableStatus``) and lexical types (``xs:date``, ``xs:decimal``, ``xs:boolean``).

The JSON envelope (``QueryResponse``, ``BatchItemRequest``/``BatchItemResponse``, ``Fault``) is
unpacked here rather than validated as XML: its XSD (IntuitRestServiceDef.xsd) includes a
Report.xsd that is not among the saved specs.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs
from xml.etree.ElementTree import Element

from xmlschema import XMLSchema
from xmlschema.validators import XsdElement

from connectors.sandbox._recording import Exchange

NAMESPACE = "http://schema.intuit.com/finance/v3"
# JSON-only keys QuickBooks adds to an entity: which service answered and whether the write was sparse.
# They are XML attributes of the envelope in the XSD's world (IntuitEntity has `domain`/`sparse` only in JSON).
JSON_ONLY_KEYS = frozenset({"domain", "sparse"})


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value)


def _build(xsd: XsdElement, value: Any, problems: list[str], path: str) -> Element:
    node = Element(f"{{{NAMESPACE}}}{xsd.local_name}")
    kind = xsd.type
    if kind.is_simple():
        if isinstance(value, dict | list):
            problems.append(f"{path}: a {type(value).__name__} where the XSD has a simple value")
        node.text = _text(value)
        return node
    if kind.has_simple_content():  # ReferenceType and friends: {"value": ..., "name": ...}
        if not isinstance(value, dict):
            problems.append(f"{path}: {value!r} where the XSD has a value with attributes (e.g. {{'value': ...}})")
            node.text = _text(value)
            return node
        node.text = _text(value.get("value", ""))
        for key, attribute in value.items():
            if key == "value":
                continue
            if key not in kind.attributes:
                problems.append(f"{path}.{key}: not an attribute of {kind.local_name or xsd.local_name} in the XSD")
            else:
                node.set(key, _text(attribute))
        return node
    if not isinstance(value, dict):
        problems.append(f"{path}: {value!r} where the XSD has an object")
        return node
    children = {child.local_name: child for child in kind.content.iter_elements()}
    for key in value.keys() - children.keys() - kind.attributes.keys() - JSON_ONLY_KEYS:
        problems.append(f"{path}.{key}: not an element of {kind.local_name or xsd.local_name} in the XSD")
    for key in value.keys() & kind.attributes.keys():
        node.set(key, _text(value[key]))
    for name, child in children.items():  # the content model's order
        if name not in value:
            continue
        items = value[name] if isinstance(value[name], list) else [value[name]]
        for index, item in enumerate(items):
            node.append(_build(child, item, problems, f"{path}.{name}" + (f"[{index}]" if len(items) > 1 else "")))
    return node


def entity_problems(schema: XMLSchema, entity: str, payload: Any, where: str) -> list[str]:
    """What the XSD says is wrong with one JSON entity (``TimeActivity``, ``Vendor``...), converted to its XML."""
    element = schema.elements.get(entity)
    if element is None:
        return [f"{where}: {entity} is not an entity of the QuickBooks XSD"]
    problems: list[str] = []
    tree = _build(element, payload, problems, f"{where} {entity}")
    problems.extend(f"{where} {entity}: {error.reason} (at {error.path})" for error in schema.iter_errors(tree))
    return problems


def _entities(container: dict[str, Any]) -> list[tuple[str, Any]]:
    """The entities in a JSON object keyed by entity name (capitalized keys; lists flattened)."""
    found = []
    for key, value in container.items():
        if not key[:1].isupper() or key in {"Fault"}:
            continue
        for item in value if isinstance(value, list) else [value]:
            found.append((key, item))
    return found


def request_problems(schema: XMLSchema, exchange: Exchange) -> list[str]:
    """What is wrong with an entity write, a batch of them, or a query as sent (empty: it conforms)."""
    label = exchange.label
    problems: list[str] = []
    queries = parse_qs(exchange.query).get("query", [])
    if exchange.request_body and exchange.route.startswith("query"):
        queries.append(exchange.request_body.decode("utf-8"))
    for query in queries:
        problems.extend(f"{label}: {problem}" for problem in query_problems(query))
    if not exchange.request_body or exchange.route.startswith("query"):
        return problems
    body = json.loads(exchange.request_body)
    if "BatchItemRequest" in body:
        for item in body["BatchItemRequest"]:
            if "Query" in item:
                problems.extend(f"{label} bId {item.get('bId')}: {p}" for p in query_problems(item["Query"]))
            for entity, payload in _entities(item):
                problems.extend(entity_problems(schema, entity, payload, f"{label} bId {item.get('bId')}"))
        return problems
    entity = _entity_of_path(exchange.path)
    return problems + entity_problems(schema, entity, body, label)


def answer_problems(schema: XMLSchema, exchange: Exchange) -> list[str]:
    """What the XSD says is wrong with the entities in an answer (empty: they conform)."""
    if not exchange.response_body or exchange.status >= 400:
        return []
    body = json.loads(exchange.response_body)
    containers = [body]
    if isinstance(body.get("QueryResponse"), dict):
        containers = [body["QueryResponse"]]
    elif isinstance(body.get("BatchItemResponse"), list):
        containers = [item for item in body["BatchItemResponse"] if "Fault" not in item]
        containers += [item["QueryResponse"] for item in containers if "QueryResponse" in item]
    problems: list[str] = []
    for container in containers:
        for entity, payload in _entities(container):
            if entity != "QueryResponse":
                problems.extend(entity_problems(schema, entity, payload, f"{exchange.label} answer"))
    return problems


_ENTITY_PATH = re.compile(r"/v3/company/[^/]+/([a-z]+)")


def _entity_of_path(path: str) -> str:
    match = _ENTITY_PATH.match(path)
    name = match.group(1) if match else ""
    # The URL names the entity in lower case; the JSON and the XSD capitalize it.
    return {"timeactivity": "TimeActivity", "companyinfo": "CompanyInfo"}.get(name, name.capitalize())


# QuickBooks' query language: one entity, conditions joined by AND only, IN lists, LIKE with %.
_LITERAL = r"(?:'(?:[^'\\]|\\.)*'|-?[0-9]+(?:\.[0-9]+)?|true|false)"
_CONDITION = (
    rf"[A-Za-z][A-Za-z0-9.]*\s*(?:(?:=|<|>|<=|>=|!=)\s*{_LITERAL}"
    rf"|\s+IN\s*\(\s*{_LITERAL}(?:\s*,\s*{_LITERAL})*\s*\)|\s+LIKE\s+'(?:[^'\\]|\\.)*')"
)
_QUERY = re.compile(
    rf"^SELECT\s+(?:\*|COUNT\(\*\)|[A-Za-z][A-Za-z0-9.]*(?:\s*,\s*[A-Za-z][A-Za-z0-9.]*)*)\s+FROM\s+[A-Za-z]+"
    rf"(?:\s+WHERE\s+{_CONDITION}(?:\s+AND\s+{_CONDITION})*)?"
    r"(?:\s+ORDERBY\s+[A-Za-z][A-Za-z0-9.]*(?:\s+(?:ASC|DESC))?)?"
    r"(?:\s+STARTPOSITION\s+[0-9]+)?(?:\s+MAXRESULTS\s+[0-9]+)?\s*$",
    re.IGNORECASE,
)


def query_problems(query: str) -> list[str]:
    """What QuickBooks' query language refuses in ``query`` (no OR, no joins, no GROUP BY, AND only)."""
    if _QUERY.match(query.strip()):
        return []
    hint = " (OR is not supported: use IN, or one query per value)" if re.search(r"\sOR\s", query, re.I) else ""
    return [f"not a QuickBooks query{hint}: {query[:200]}"]
