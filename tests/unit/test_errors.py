"""The one exception tree: every connector error lives in connectors/errors.py, and none is told apart by its text."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import connectors
from connectors import errors
from connectors.errors import (
    Action,
    ConfigError,
    CredentialRefused,
    DailyLimitError,
    HourbridgeError,
    OutcomeUnknown,
    QuickBooksFault,
    RequestBugError,
    XeroRefused,
    action_of,
)

CONNECTORS = Path(connectors.__file__).parent


def _connector_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages([str(CONNECTORS)], prefix="connectors.")]


def test_every_connector_error_is_defined_in_errors_py() -> None:
    elsewhere: list[str] = []
    for name in _connector_modules():
        module = importlib.import_module(name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, HourbridgeError) and value.__module__ == name and name != "connectors.errors":
                elsewhere.append(f"{name}.{value.__qualname__}")
    assert elsewhere == []


def test_the_docstring_draws_every_error_of_the_tree() -> None:
    drawn = errors.__doc__ or ""
    defined = [
        value.__name__
        for _, value in inspect.getmembers(errors, inspect.isclass)
        if issubclass(value, HourbridgeError) and value.__module__ == "connectors.errors"
    ]
    assert len(defined) >= 12
    assert [name for name in defined if name not in drawn] == []


def _text_of_error(node: ast.expr) -> bool:
    """``exc.message`` / ``str(exc)``: the text of an error, which is for people, not for code."""
    if isinstance(node, ast.Attribute) and node.attr == "message":
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "str"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id in ("exc", "e", "err", "error")
    )


def test_no_connector_tells_errors_apart_by_their_text() -> None:
    found: list[str] = []
    for path in sorted(CONNECTORS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Compare)
                and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops)
                and any(_text_of_error(side) for side in [node.left, *node.comparators])
            ):
                found.append(f"{path.relative_to(CONNECTORS)}:{node.lineno}")
    assert found == []


def test_subclasses_keep_the_action_of_their_branch() -> None:
    assert CredentialRefused("x").action is Action.CONFIG and isinstance(CredentialRefused("x"), ConfigError)
    assert isinstance(QuickBooksFault("x", ("610",)), RequestBugError)
    refused = XeroRefused("x", 404)
    assert isinstance(refused, RequestBugError) and refused.status == 404
    assert DailyLimitError("x", retry_after=60).action is Action.TRANSIENT
    assert OutcomeUnknown("x").action is Action.TRANSIENT


@pytest.mark.parametrize(
    ("exc", "action"),
    [
        (ConfigError("x"), Action.CONFIG),
        (DailyLimitError("x"), Action.TRANSIENT),
        (RequestBugError("x"), Action.BUG),
        (ValueError("x"), Action.BUG),
    ],
)
def test_action_of_any_failure(exc: BaseException, action: Action) -> None:
    assert action_of(exc) is action
