"""The recorded traffic of the conformance scenarios, once per session, grouped by the API (spec) it belongs to."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from connectors.sandbox._recording import Exchange
from tests.conformance import scenarios
from tests.conformance.specs import require_specs

# Where each API lives on the emulators (the path prefix its spec's server URL carries too).
PREFIXES = (
    ("asana", "/api/1.0/"),
    ("clickup", "/api/v2/"),
    ("monday", "/v2"),
    ("quickbooks", "/v3/company/"),
    ("xero-projects", "/projects.xro/2.0/"),
    ("xero-accounting", "/api.xro/2.0/"),
    ("xero-identity", "/connections"),
    # The OAuth servers' authorize and token endpoints: no spec of them is among ../shared/specs.
    ("oauth", "/authorize"),
    ("oauth", "/token"),
)


def api_of(exchange: Exchange) -> str:
    for api, prefix in PREFIXES:
        if exchange.path == prefix.rstrip("/") or exchange.path.startswith(prefix):
            return api
    return "unknown"


@pytest.fixture(scope="session")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Exchange]]:
    require_specs()
    folder: Path = tmp_path_factory.mktemp("conformance")
    recorded = scenarios.demo(folder) + scenarios.xero_projects(folder) + scenarios.xero_connections()
    grouped: dict[str, list[Exchange]] = defaultdict(list)
    for exchange in recorded:
        grouped[api_of(exchange)].append(exchange)
    return dict(grouped)
