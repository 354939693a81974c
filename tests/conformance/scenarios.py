"""The traffic the conformance suite judges: a demo-sized run of every connector against the emulators, recorded.

- ``demo``: ``hourbridge demo`` itself (Asana, ClickUp, monday.com, QuickBooks, Xero draft bills),
  on a small data set and a frozen date, so it takes seconds and is the same every time.
- ``xero-projects``: Xero's other mode (project time entries): create, an unchanged re-run, then
  one entry changed and one deleted, so the create, update and delete calls all happen.
- ``xero-connections``: the OAuth grant of ``hourbridge connect xero``, ending in ``GET /connections``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import SecretStr

from connectors.oauth import OAuthApp, OAuthClient, provider_facts
from connectors.sandbox._recording import Exchange, recording
from connectors.sandbox.oauth import OAuthSandbox
from connectors.sandbox.xero import XeroSandbox
from sync.ops.demo import run_demo
from sync.run.pipeline import run_sync
from sync.settings import DeliverySettings, Settings, XeroSettings
from sync.store.db import make_engine
from tests.fakes import ListSource

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DEMO_ENTRIES = 80  # enough for several pages, months and sinks; small enough for seconds

XERO_DOCUMENT = """\
version: 1
codes:
  WEB:
    name: Website
    client: Northwind
    cost_center: CC-1
    billable: true
    rates: [{rate: "95.00", currency: USD, effective_from: 2020-01-01}]
    xero: {account: "200", project: Website build, task: Development}
people:
  - contractor: Zoë Müller
    email: zoe@example.com
    xero_contact: Zoë Müller Ltd
rules:
  - {id: web, priority: 1, code: WEB, match: {project: Website}}
"""


def demo(tmp: Path) -> list[Exchange]:
    with recording() as traffic:
        summary = run_demo(tmp / "demo", as_of=AS_OF, entries=DEMO_ENTRIES)
    assert summary.reconciled, "the demo must reconcile before its traffic means anything"
    return traffic.exchanges


def _xero_run(tmp: Path, source: ListSource, xero: XeroSandbox) -> None:
    (tmp / "rules.yaml").write_text(XERO_DOCUMENT, encoding="utf-8")
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'ledger.db'}",
        mappings_file=tmp / "rules.yaml",
        output_dir=tmp / "out",
        start_date=date(2026, 10, 1),
        lookback_days=60,
        xero=XeroSettings(
            tenant_id=xero.tenant_id,
            mode="projects",
            projects_base_url=xero.projects_url,
            accounting_base_url=xero.accounting_url,
            access_token=SecretStr(xero.token),
            tracking_categories=["Cost center"],
            rate_limit_per_minute=10_000,
        ),
        delivery=DeliverySettings(asana_gate="none"),
    )
    engine = make_engine(settings.database_url)
    try:
        result = run_sync(
            settings, sources={"asana": source}, engine=engine, as_of=AS_OF, clock=lambda: AS_OF, write_reports=False
        )
    finally:
        engine.dispose()
    assert not result.deliveries["xero"].failed, result.deliveries["xero"].errors


def xero_projects(tmp: Path) -> list[Exchange]:
    folder = tmp / "xero-projects"
    folder.mkdir()
    source = ListSource()
    source.put("e1", 30, date(2026, 11, 3))
    source.put("e2", 45, date(2026, 11, 3))
    source.put("e3", 20, date(2026, 11, 4), person="u2")
    with (
        XeroSandbox(
            projects={"Website build": ["Development"]},
            users=["Zoë Müller Ltd", "Liam O'Connor"],
            contacts=["Zoë Müller Ltd", "Liam O'Connor"],
            accounts=["200"],
            tracking={"Cost center": ["CC-1"]},
            rate_limit_per_minute=None,
        ) as xero,
        recording() as traffic,
    ):
        _xero_run(folder, source, xero)
        _xero_run(folder, source, xero)  # unchanged: reads only
        source.put("e3", 50, date(2026, 11, 4), person="u2")
        del source.entries["e2"]
        _xero_run(folder, source, xero)
    return traffic.exchanges


def xero_connections() -> list[Exchange]:
    redirect = "http://127.0.0.1:8765/callback"
    tenants = {"b2d1a7a4-5d3e-4c55-9a43-7c2f0e1d9a10": "Example Consulting"}
    with (
        OAuthSandbox("xero", accounts=tenants, redirect_uris=[redirect]) as oauth,
        XeroSandbox(oauth=oauth) as api,
        recording() as traffic,
    ):
        app = OAuthApp(
            provider=provider_facts("xero"),
            client_id=oauth.client_id,
            client_secret=oauth.client_secret,
            authorize_url=oauth.authorize_url,
            token_url=oauth.token_url,
            scopes=("offline_access", "accounting.transactions"),
            redirect_uri=redirect,
            connections_url=api.server.root_url + "/connections",
        )
        client = OAuthClient(app)
        # The browser's part: consent, then the redirect back with the code.
        consent = httpx.get(client.authorization_url("state-1"), follow_redirects=False)
        code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
        tokens = client.exchange_code(code)
        connections = client.connections(tokens.access_token)
    assert [c.tenant_id for c in connections] == list(tenants)
    return traffic.exchanges
