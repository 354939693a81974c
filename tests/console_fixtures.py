"""A small ledger for the console's tests: entries mapped by one revision, some unmapped, and sign-in helpers."""

from __future__ import annotations

import html
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from starlette.testclient import TestClient

from connectors.model import Container, Person, TaskRef, TimeEntry, Window
from sync.admin import revisions as admin_revisions
from sync.run.context import RunContext
from sync.run.remap import remap
from sync.settings import Settings
from sync.store import console as console_store
from sync.store import ledger
from sync.store.mapped import BoundMatcher
from sync.store.runs import finish_run, start_run

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

DOCUMENT = """\
version: 1
codes:
  WEB: {name: Website, client: Northwind, cost_center: CC-1, billable: true}
  APP: {name: Mobile app, client: Northwind, cost_center: CC-2, billable: true}
people:
  - {contractor: Zoë Müller, email: zoe@example.com}
  - {contractor: Sam Lee, email: sam@example.com}
rules:
  - id: web
    priority: 100
    code: WEB
    match: {project: Website}
"""


def make_entry(external_id: str, *, minutes: int, project: str | None, person: str = "u1", day: int = 5) -> TimeEntry:
    containers: tuple[Container, ...] = (Container("workspace", "ws1", "Acme"),)
    if project is not None:
        containers += (Container("project", f"p-{project}", project),)
    name, email = ("Zoë Müller", "zoe@example.com") if person == "u1" else ("Sam Lee", "sam@example.com")
    return TimeEntry(
        source="asana",
        account="ws1",
        external_id=external_id,
        work_date=date(2026, 11, day),
        duration_seconds=minutes * 60,
        person=Person(person, name, email),
        task=TaskRef("t-build", "Build"),
        containers=containers,
    )


LEDGER = [
    make_entry("web-1", minutes=60, project="Website"),
    make_entry("web-2", minutes=30, project="Website", person="u2"),
    make_entry("app-1", minutes=90, project="Mobile", person="u2"),
    make_entry("app-2", minutes=30, project="Mobile", day=6),
]


def seed(engine: Engine, settings: Settings) -> None:
    """The ledger above, ingested by a finished run and mapped by revision 1 (Mobile stays unmapped)."""
    with engine.begin() as conn:
        run_id = start_run(conn, command="sync", as_of=NOW, now=NOW)
        writer = ledger.WindowIngest(conn, "asana", "ws1", Window(date(2026, 11, 1), date(2026, 11, 20)), run_id, NOW)
        writer.add(LEDGER)
        writer.close()
        finish_run(conn, run_id, status="ok", counts={"scopes": {"asana:ws1": {}}}, errors=[], now=NOW)
    loaded = admin_revisions.parse_document(DOCUMENT, "test document")
    outcome = admin_revisions.apply_document(engine, loaded, author="setup", comment="first", now=NOW)
    context = RunContext.create(settings, engine, as_of=NOW, clock=lambda: NOW)
    remap(context, BoundMatcher(loaded.matcher, outcome.revision.id))


def new_token(engine: Engine, *, role: str = "admin", label: str = "Ada") -> str:
    with engine.begin() as conn:
        secret, _ = console_store.new_token(conn, label=label, role=role, by="test", now=NOW)
    return secret


def console_settings(tmp_path: Path, engine: Engine, **console: object) -> Settings:
    """Settings without a mapping file (callers chdir to an empty folder): the console edits stored revisions."""
    return Settings(
        database_url=str(engine.url.render_as_string(hide_password=False)),
        output_dir=tmp_path / "out",
        console=console,
    )


class Clock:
    """A clock the test moves (sessions expire without sleeping)."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found is not None, "the page carries no CSRF field"
    return found.group(1)


def form_value(page: str, name: str) -> str:
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert found is not None, f"no field {name!r} on the page"
    return html.unescape(found.group(1))


def try_sign_in(client: TestClient, token: str, headers: dict[str, str] | None = None):
    """One token sign-in through the form (its CSRF cookie and field first); the answer, not followed."""
    page = client.get("/login")
    return client.post(
        "/login",
        data={"token": token, "csrf_token": csrf_of(page.text), "next": "/"},
        headers=headers,
        follow_redirects=False,
    )
