"""Property: any sequence of imports of overlapping slices leaves the ledger equal to the last snapshot of each slice.

The model is what the issue promises: an imported file replaces, for each person in it, every entry of
theirs from the file's first to its last date; nothing else changes. Each example runs the real
`hourbridge import` path (read, check, write a snapshot) on SQLite, and on PostgreSQL when
HOURBRIDGE_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, select, text

from connectors.imports import ImportOptions
from sync.ops.demo import EXAMPLE_MAPPINGS
from sync.run.imports import run_import
from sync.settings import Settings
from sync.store.db import make_engine, upgrade
from sync.store.tables import entries

FIRST = date(2026, 11, 2)
PEOPLE = ("ada@example.com", "bob@example.com")
WORDS = ("Design", "Build", "Test")

row = st.tuples(
    st.sampled_from(PEOPLE),
    st.integers(0, 6).map(lambda n: FIRST + timedelta(days=n)),
    st.sampled_from(WORDS),
    st.sampled_from(("0.25", "1", "1.5", "2", "7.75")),
)
# One import: a file of rows (one person's or two people's), at least one row.
upload = st.lists(row, min_size=1, max_size=6)

Fact = tuple[str, date, str, int]


def expected_after(uploads: list[list[tuple[str, date, str, str]]]) -> Counter[Fact]:
    ledger: Counter[Fact] = Counter()
    for rows in uploads:
        spans: dict[str, tuple[date, date]] = {}
        for person, day, _, _ in rows:
            first, last = spans.get(person, (day, day))
            spans[person] = (min(first, day), max(last, day))
        for fact in list(ledger):
            person, day = fact[0], fact[1]
            if person in spans and spans[person][0] <= day <= spans[person][1]:
                del ledger[fact]
        for person, day, words, hours in rows:
            ledger[(person, day, words, int(float(hours) * 3600))] += 1
    return ledger


def stored(engine: Engine) -> Counter[Fact]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(entries.c.person_id, entries.c.work_date, entries.c.payload, entries.c.duration_seconds).where(
                entries.c.deleted_at.is_(None)
            )
        ).all()
    return Counter((r.person_id, r.work_date, r.payload["description"], r.duration_seconds) for r in rows)


@contextmanager
def fresh_engine(kind: str) -> Iterator[Engine]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            engine = make_engine(f"sqlite:///{Path(folder) / 'ledger.db'}")
            upgrade(engine)
            try:
                yield engine
            finally:
                engine.dispose()
        return
    url = os.environ.get("HOURBRIDGE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("HOURBRIDGE_TEST_POSTGRES_URL is not set; PostgreSQL tests skipped")
    schema = f"p_{uuid.uuid4().hex[:12]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _search_path(dbapi_connection: Any, _: object) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f'SET search_path TO "{schema}"')
        cursor.close()
        dbapi_connection.commit()

    upgrade(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(uploads=st.lists(upload, min_size=1, max_size=5))
def test_the_ledger_holds_the_last_snapshot_of_every_slice(
    database: str, uploads: list[list[tuple[str, date, str, str]]]
) -> None:
    if database == "postgres" and not os.environ.get("HOURBRIDGE_TEST_POSTGRES_URL"):
        pytest.skip("HOURBRIDGE_TEST_POSTGRES_URL is not set; PostgreSQL tests skipped")
    with fresh_engine(database) as engine, tempfile.TemporaryDirectory() as folder:
        config = Settings(database_url=str(engine.url), mappings_file=EXAMPLE_MAPPINGS, output_dir=Path(folder))
        for number, rows in enumerate(uploads):
            path = Path(folder) / f"upload-{number}.csv"
            lines = ["date,contractor_email,hours,description,project_code"]
            lines += [f"{day.isoformat()},{person},{hours},{words},NWT-APP" for person, day, words, hours in rows]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            run_import(config, [path], options=ImportOptions(), engine=engine)
            assert stored(engine) == expected_after(uploads[: number + 1])
        # Importing the last file again changes nothing.
        again = run_import(config, [path], options=ImportOptions(), engine=engine)
        assert again.versions_written == 0
