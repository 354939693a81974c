"""Validates recorded monday.com GraphQL exchanges against the full published SDL with graphql-core.

A request conforms when its document validates against the schema and its variables coerce to
the operation's variable types. An answer conforms when re-serializing its ``data`` through the
schema (graphql-core's executor, reading each field from the answer itself) reproduces it
exactly: a missing non-null field, an unknown enum value, an ``ID`` sent as a number, a field the
query did not ask for or a value of the wrong shape all change the result.
"""

from __future__ import annotations

import json
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLAbstractType,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    execute_sync,
    parse,
    validate,
)
from graphql.error import GraphQLError
from graphql.execution.values import get_variable_values
from graphql.language import visit
from graphql.language.visitor import Visitor

from connectors.sandbox._recording import Exchange


def _payload(exchange: Exchange) -> tuple[str, dict[str, Any]]:
    body = json.loads(exchange.request_body.decode("utf-8"))
    return str(body["query"]), dict(body.get("variables") or {})


def _operation(document: DocumentNode) -> OperationDefinitionNode:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1:
        raise ValueError(f"expected one operation per request, found {len(operations)}")
    return operations[0]


def request_problems(schema: GraphQLSchema, exchange: Exchange) -> list[str]:
    """What the SDL says is wrong with the document and variables as sent (empty: they conform)."""
    try:
        query, variables = _payload(exchange)
        document = parse(query)
        operation = _operation(document)
    except (ValueError, KeyError, GraphQLError) as error:
        return [f"{exchange.label}: not a GraphQL request: {error}"]
    problems = [f"{exchange.label}: {error.message}" for error in validate(schema, document)]
    if problems:
        return problems
    coerced = get_variable_values(schema, operation.variable_definitions or (), variables)
    if isinstance(coerced, list):
        problems.extend(f"{exchange.label}: variables: {error.message}" for error in coerced)
    declared = {d.variable.name.value for d in operation.variable_definitions or ()}
    problems.extend(
        f"{exchange.label}: variable ${name} is not declared" for name in sorted(variables.keys() - declared)
    )
    return problems


class _FragmentTypes(Visitor):
    """The type conditions of a document's inline fragments (which concrete types it asks about)."""

    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def enter_inline_fragment(self, node: InlineFragmentNode, *_: Any) -> None:
        if node.type_condition is not None:
            self.names.add(node.type_condition.name.value)


def _field_from_answer(source: Any, info: GraphQLResolveInfo, **_: Any) -> Any:
    # The answer is keyed by response name (the alias when there is one).
    return source.get(info.path.key) if isinstance(source, dict) else None


def _type_resolver(asked: set[str]) -> Any:
    def resolve(value: Any, info: GraphQLResolveInfo, abstract: GraphQLAbstractType) -> str | None:
        if isinstance(value, dict) and isinstance(value.get("__typename"), str):
            return str(value["__typename"])
        keys = set(value) if isinstance(value, dict) else set()
        candidates: list[GraphQLObjectType] = [
            kind for kind in info.schema.get_possible_types(abstract) if keys <= set(kind.fields)
        ]
        preferred = [kind for kind in candidates if kind.name in asked] or candidates
        return preferred[0].name if preferred else None

    return resolve


def answer_problems(schema: GraphQLSchema, exchange: Exchange) -> list[str]:
    """What the SDL says is wrong with the answer's ``data`` (empty: it conforms, or it is an error answer)."""
    try:
        answer = json.loads(exchange.response_body.decode("utf-8"))
        query, variables = _payload(exchange)
        document = parse(query)
    except (ValueError, KeyError, GraphQLError) as error:
        return [f"{exchange.label}: answer is not GraphQL JSON: {error}"]
    if not isinstance(answer, dict) or not ({"data", "errors"} & answer.keys()):
        return [f"{exchange.label}: answer has neither `data` nor `errors`"]
    problems = []
    for error in answer.get("errors") or ():
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            problems.append(f"{exchange.label}: an error without a string `message`: {error!r}")
    data = answer.get("data")
    if data is None:
        return problems
    fragments = _FragmentTypes()
    visit(document, fragments)
    result = execute_sync(
        schema,
        document,
        root_value=data,
        variable_values=variables,
        field_resolver=_field_from_answer,
        type_resolver=_type_resolver(fragments.names),
    )
    if result.errors and not answer.get("errors"):
        problems.extend(f"{exchange.label}: answer: {error.message} at {error.path}" for error in result.errors)
    elif result.data != data:
        problems.append(
            f"{exchange.label}: answer data does not survive the schema: {_first_difference(data, result.data)}"
        )
    return problems


def _first_difference(given: Any, typed: Any, path: str = "data") -> str:
    if isinstance(given, dict) and isinstance(typed, dict):
        for key in given.keys() | typed.keys():
            if key not in typed:
                return f"{path}.{key} is not part of the query's result"
            if key not in given:
                return f"{path}.{key} is missing"
            if given[key] != typed[key]:
                return _first_difference(given[key], typed[key], f"{path}.{key}")
    if isinstance(given, list) and isinstance(typed, list) and len(given) == len(typed):
        for index, (one, other) in enumerate(zip(given, typed, strict=True)):
            if one != other:
                return _first_difference(one, other, f"{path}[{index}]")
    return f"{path}: answered {given!r}, the schema's type gives {typed!r}"
