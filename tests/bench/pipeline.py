"""The local pipeline alone: built TimeEntry values → batched ledger upserts → mapping, in entries per second."""

from __future__ import annotations

import gc
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text

from connectors.model import TimeEntry, Window
from sync.run.context import CHUNK_DAYS, RunContext
from sync.run.mapping import adopt_mapping, load_mapping
from sync.run.remap import remap
from sync.settings import Settings
from sync.store import ledger
from sync.store.db import make_engine, upgrade
from sync.store.runs import start_run


@contextmanager
def sqlite_ledger() -> Iterator[Engine]:
    """A fresh SQLite file, with the same pragmas the product sets."""
    with tempfile.TemporaryDirectory(prefix="hourbridge-bench-") as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'ledger.db'}")
        upgrade(engine)
        try:
            yield engine
        finally:
            engine.dispose()


@contextmanager
def postgres_ledger(url: str) -> Iterator[Engine]:
    """A fresh schema in the given database (search_path set on every connection), dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
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

    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def measure_pipeline(
    engine: Engine, entries: list[TimeEntry], window: Window, *, mappings_file: Path, as_of: datetime
) -> dict[str, Any]:
    """Ingest ``entries`` chunk by chunk as the ingest stage does, then run the remap stage over them."""
    source, account = entries[0].source, entries[0].account
    # Split before the clock starts: the ingest stage receives each chunk's entries from the connector.
    chunks = [(chunk, [e for e in entries if e.work_date in chunk]) for chunk in window.split(CHUNK_DAYS)]
    settings = Settings(database_url=str(engine.url), mappings_file=mappings_file, asana=None)
    context = RunContext.create(settings, engine, as_of=as_of)
    with engine.begin() as conn:
        run_id = start_run(conn, command="bench", as_of=as_of, now=as_of)
    counts = ledger.IngestCounts()
    matcher = adopt_mapping(context, load_mapping(settings, engine)).bound  # as the pipeline does before any pull
    collecting = _CollectorClock()
    gc.callbacks.append(collecting)
    try:
        started = time.perf_counter()
        for chunk, part in chunks:
            # One transaction per chunk, like the ingest stage.
            with engine.begin() as conn:
                ingest = ledger.WindowIngest(conn, source, account, chunk, run_id, as_of, matcher=matcher)
                for batch in ledger.batched(part, ledger.BATCH):
                    ingest.add(batch)
                counts.add(ingest.close())
        ingest_seconds = time.perf_counter() - started
        started = time.perf_counter()
        mapped = remap(context, matcher).mapped
        map_seconds = time.perf_counter() - started
    finally:
        gc.callbacks.remove(collecting)
    total = ingest_seconds + map_seconds
    return {
        "entries": len(entries),
        "created": counts.created,
        "mapped": mapped,
        "ingest_seconds": round(ingest_seconds, 2),
        "map_seconds": round(map_seconds, 2),
        "entries_per_second": round(len(entries) / total) if total else None,
        "gc_seconds": round(collecting.seconds, 2),
    }


class _CollectorClock:
    """Seconds spent in the garbage collector (a ``gc.callbacks`` entry)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
