"""Benchmark of the mappings engine: entries mapped per second for small and large rule sets."""

from __future__ import annotations

import random
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: make the project importable without installing it.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from connectors.model import Container, Person, TaskRef, TimeEntry
from mappings.engine import Mapped, compile_rules
from mappings.schema import MappingDocument

ENTRY_COUNT = 100_000
RULE_COUNTS = (10, 10_000)


def build_document(rule_count: int, *, seed: int = 7) -> MappingDocument:
    """A document shaped like a large agency's: mostly project rules, some by field, person, tag, glob."""
    rng = random.Random(seed)
    codes = {
        f"C-{n:05d}": {
            "name": f"Code {n}",
            "client": f"Client {n % 97}",
            "cost_center": f"CC-{n % 13}",
            "billable": True,
        }
        for n in range(max(rule_count, 10))
    }
    rules: list[dict[str, Any]] = []
    for n in range(rule_count):
        code = f"C-{n:05d}"
        roll = rng.random()
        match: dict[str, Any]
        if roll < 0.70:
            match = {"source": "asana", "project": f"Project {n}"}
        elif roll < 0.80:
            match = {"custom_field": {"Project code": code}}
        elif roll < 0.88:
            match = {"list": f"List {n}", "tag": ["billable", "client"]}
        elif roll < 0.95:
            match = {"person": f"user{n}@example.com", "board": f"Board {n % 50}"}
        else:
            match = {"workspace": f"ws-{n % 5}", "task_name": f"Task {n} *"}
        rule: dict[str, Any] = {"id": f"r{n}", "priority": rng.randint(1, 5) * 10, "code": code, "match": match}
        if rng.random() < 0.1:
            rule["effective_from"] = date(2026, 1, 1) + timedelta(days=rng.randint(0, 90))
        rules.append(rule)
    return MappingDocument.model_validate({"version": 1, "codes": codes, "people": [], "rules": rules})


def build_entries(rule_count: int, count: int = ENTRY_COUNT, *, seed: int = 11) -> list[TimeEntry]:
    """Entries of a typical month: a few hundred projects and people, some deliberately unmapped."""
    rng = random.Random(seed)
    projects = [rng.randrange(max(rule_count, 1) * 12 // 10) for _ in range(400)]
    entries: list[TimeEntry] = []
    for n in range(count):
        project = rng.choice(projects)
        person = rng.randrange(60)
        fields = (("Project code", f"C-{project:05d}"),) if rng.random() < 0.2 else ()
        entries.append(
            TimeEntry(
                source="asana",
                account="ws-1",
                external_id=str(n),
                work_date=date(2026, 1, 1) + timedelta(days=rng.randrange(180)),
                duration_seconds=rng.randrange(60, 28_800),
                person=Person(id=str(1000 + person), name=f"User {person}", email=f"user{person}@example.com"),
                task=TaskRef(id=f"t{n % 5000}", name=f"Task {project} design"),
                containers=(
                    Container("workspace", "ws-1", "Acme"),
                    Container("project", f"p{project}", f"Project {project}"),
                ),
                tags=("billable",) if rng.random() < 0.5 else (),
                custom_fields=fields,
                billable=None if rng.random() < 0.5 else True,
            )
        )
    return entries


def measure(rule_count: int, entries_count: int = ENTRY_COUNT, repeats: int = 5) -> dict[str, Any]:
    """Best of ``repeats`` runs, in CPU time of this process: one core's throughput, whatever else runs."""
    doc = build_document(rule_count)
    started = time.perf_counter()
    matcher = compile_rules(doc)
    compile_seconds = time.perf_counter() - started
    entries = build_entries(rule_count, entries_count)
    best = float("inf")
    mapped = 0
    for _ in range(repeats):
        started = time.process_time()
        results = matcher.match_many(entries)
        best = min(best, time.process_time() - started)
        mapped = sum(isinstance(result, Mapped) for result in results)
    return {
        "rules": rule_count,
        "entries": len(entries),
        "entries_per_second": round(len(entries) / best),
        "mapped_share": round(mapped / len(entries), 3),
        "compile_seconds": round(compile_seconds, 3),
    }


def run() -> list[dict[str, Any]]:
    """Measure every rule count and print one line each."""
    figures = [measure(count) for count in RULE_COUNTS]
    for figure in figures:
        print(
            f"{figure['rules']:>6} rules: {figure['entries_per_second']:>9,} entries/s "
            f"({figure['entries']:,} entries, {figure['mapped_share']:.0%} mapped, "
            f"compiled in {figure['compile_seconds']}s)"
        )
    return figures


if __name__ == "__main__":
    run()
