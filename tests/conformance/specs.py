"""Loads the official specs from ../shared/specs once per session, with the documented relaxations applied."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from graphql import GraphQLSchema, build_schema
from openapi_core import OpenAPI
from openapi_core.configurations import Config
from openapi_spec_validator import validate as validate_spec
from xmlschema import XMLSchema

from tests.conformance import relaxations
from tests.conftest import SPECS

ASANA = "asana_oas.yaml"
CLICKUP = relaxations.CLICKUP
XERO_PROJECTS = "xero-projects.yaml"
XERO_ACCOUNTING = relaxations.XERO_ACCOUNTING
XERO_IDENTITY = relaxations.XERO_IDENTITY
MONDAY = "monday-schema.graphql"
QBO_XSD_DIR = "qbo-v3-xsd"
QBO_NAMESPACE = "http://schema.intuit.com/finance/v3"


def require_specs() -> Path:
    """The specs folder, or a skip saying why the suite cannot run."""
    if not (SPECS / ASANA).is_file():
        pytest.skip(f"the official API specs are not at {SPECS} (a checkout without ../shared/specs)")
    return SPECS


def _string_keys(node: Any) -> Any:
    # YAML reads `200:` as an int; OpenAPI keys are strings (and the validators insist on it).
    if isinstance(node, dict):
        return {str(key): _string_keys(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_string_keys(value) for value in node]
    return node


@cache
def _document_text(name: str) -> str:
    return (require_specs() / name).read_text(encoding="utf-8")


def document(name: str) -> Any:
    """A fresh parse of one OpenAPI document (callers edit it)."""
    text = _document_text(name)
    if name.endswith(".json"):
        return json.loads(text)
    # The C loader is a safe loader too (S506 cannot tell); it reads Asana's 3 MB document in a second.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return _string_keys(yaml.load(text, Loader=loader))  # noqa: S506


@cache
def openapi(name: str, *, answers: bool = False) -> OpenAPI:
    """An openapi-core validator for one document, relaxed where documented (and tightened for answers).

    The relaxed document is checked against the OpenAPI meta-schema first, so a relaxation can
    only make an invalid document valid, never hide that the rest of it is not.
    """
    kinds = ("relaxation", "tightening") if answers else ("relaxation",)
    parsed = relaxations.apply(name, document(name), kinds=kinds)
    if not answers:
        validate_spec(parsed)
    # Checked above (the answers variant differs only by added `pattern`s).
    return OpenAPI.from_dict(parsed, config=Config(spec_validator_cls=None))


@cache
def monday_schema() -> GraphQLSchema:
    """The full monday.com SDL, as published for API version 2026-10."""
    return build_schema(_document_text(MONDAY))


@cache
def quickbooks_xsd() -> XMLSchema:
    """Intuit's QBO v3 entities: Finance.xsd, with the entity elements IntuitRestServiceDef.xsd declares.

    IntuitRestServiceDef.xsd cannot be loaded itself: it includes a Report.xsd that is not among the
    saved specs. Its entity declarations (``<xs:element name="TimeActivity" type="TimeActivity"
    substitutionGroup="IntuitObject"/>``) are read from it and declared over Finance.xsd as they are.
    """
    folder = require_specs() / QBO_XSD_DIR
    service = (folder / "IntuitRestServiceDef.xsd").read_text(encoding="utf-8")
    entities = re.findall(r'<xs:element name="(\w+)" type="(\w+)" substitutionGroup="IntuitObject"/>', service)
    included = ("Finance.xsd", "IntuitBaseTypes.xsd", "IntuitNamesTypes.xsd")
    types = "".join((folder / name).read_text(encoding="utf-8") for name in included)
    declarations = "".join(
        f'<xs:element name="{name}" type="{kind}"/>'
        for name, kind in entities
        if f'complexType name="{kind}"' in types  # a few (RecurringTransaction) are typed in the service file
    )
    wrapper = (
        f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="{QBO_NAMESPACE}" '
        f'targetNamespace="{QBO_NAMESPACE}" elementFormDefault="qualified">'
        f'<xs:include schemaLocation="Finance.xsd"/>{declarations}</xs:schema>'
    )
    return XMLSchema(wrapper, base_url=str(folder))
