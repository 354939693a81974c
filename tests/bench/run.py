"""Benchmark a real sync per source against its sandbox: API calls, wall time, 429s, memory, local throughput.

    python tests/bench/run.py [--n 5000 ...] [--full] [--rate-scale F] [--output PATH]

Prints the results as tables (targets beside the figures, never asserted) and writes them as JSON.
See tests/bench/README.md for what every column means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    # Run as a script: make the project (and tests.bench) importable without installing it.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from connectors.model import TimeEntry, Window
from connectors.sandbox.dataset import Dataset, generate_dataset
from sync.ops.demo import EXAMPLE_MAPPINGS
from sync.settings import Settings
from sync.store import ledger
from sync.store.db import make_engine
from sync.store.tables import entries as entries_table
from tests.bench.adapters import SourceBench, registered
from tests.bench.delivery_bench import measure_deliveries
from tests.bench.pipeline import measure_pipeline, postgres_ledger, sqlite_ledger

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DEFAULT_SIZES = (10_000, 100_000)
FULL_SIZE = 1_000_000
SEED = 7
# A fixed anchor and span: every run of the harness measures the same data for the same N.
ANCHOR = date(2026, 11, 20)
DAYS = 60
AS_OF = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
POSTGRES_ENV = "HOURBRIDGE_TEST_POSTGRES_URL"
SYNC_TIMEOUT_SECONDS = 3 * 3600

TARGETS = {
    "calls_over_lower_bound": 1.05,
    "wall_over_rate_bound": 1.15,
    "throttled_share": 0.01,
    "pipeline_sqlite_entries_per_second": 20_000,
    "peak_rss_mb_at_1m": 300,
    "rerun_rows_written": 0,
    "rerun_deliveries_sent": 0,
}
DELIVERY_NOTE = (
    "writes of a second `hourbridge deliver` to the QuickBooks and Xero emulators, nothing changed "
    "(the first source's ledger at each N; see the deliveries table)"
)

# Wide enough for every column when the output goes to a file or a pipe (Rich would assume 80).
console = Console(width=None if sys.stdout.isatty() else 170)


# --------------------------------------------------------------------------- the real sync, in a child


def hourbridge_script() -> Path:
    """The console script of the interpreter running us, else the project's virtualenv."""
    beside = Path(sys.executable).parent / "hourbridge"
    return beside if beside.exists() else ROOT / ".venv" / "bin" / "hourbridge"


def sync_env(workdir: Path, dataset: Dataset, bench: SourceBench) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOURBRIDGE_")}
    env |= {
        "HOURBRIDGE_SECRETS_DIR": str(workdir / "no-secrets"),
        "HOURBRIDGE_DATABASE_URL": f"sqlite:///{workdir / 'state.db'}",
        "HOURBRIDGE_MAPPINGS_FILE": str(EXAMPLE_MAPPINGS),
        "HOURBRIDGE_OUTPUT_DIR": str(workdir / "out"),
        "HOURBRIDGE_START_DATE": dataset.start.isoformat(),
        "HOURBRIDGE_LOG_FORMAT": "json",
    }
    return env | bench.sync_env()


def run_sync(env: dict[str, str], workdir: Path, label: str) -> dict[str, Any]:
    """One `hourbridge sync` process: its exit code, wall time and own peak RSS."""
    report = workdir / f"{label}.rss.json"
    command = [
        sys.executable,
        "-S",
        str(HERE / "peak_rss.py"),
        str(report),
        "--",
        str(hourbridge_script()),
        "sync",
        "--as-of",
        AS_OF.isoformat(),
        "--no-reports",
    ]
    log_path = workdir / f"{label}.log"
    with log_path.open("wb") as log:
        started = time.perf_counter()
        completed = subprocess.run(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=SYNC_TIMEOUT_SECONDS, check=False
        )
        wall = time.perf_counter() - started
    if completed.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"`hourbridge sync` ({label}) exited with {completed.returncode}:\n{tail}")
    figures = json.loads(report.read_text(encoding="utf-8"))
    return {"wall_seconds": round(wall, 2), "peak_rss_mb": round(figures["max_rss_kib"] / 1024, 1)}


def ledger_state(workdir: Path) -> tuple[int, dict[str, str]]:
    """(entry_versions rows, live external_id → content_hash) of the child's ledger."""
    engine = make_engine(f"sqlite:///{workdir / 'state.db'}")
    try:
        with engine.connect() as conn:
            versions = ledger.version_count(conn)
            hashes = dict(
                conn.execute(
                    select(entries_table.c.external_id, entries_table.c.content_hash).where(
                        entries_table.c.deleted_at.is_(None)
                    )
                ).all()
            )
    finally:
        engine.dispose()
    return versions, hashes


# --------------------------------------------------------------------------- one source at one N


def measure_source(
    bench: SourceBench, dataset: Dataset, *, deliver_scale: float | None = None
) -> tuple[dict[str, Any], list[TimeEntry]]:
    """The sandbox phases (first sync, re-run, deliveries, baseline) and the pipeline's input.

    With ``deliver_scale``, the synced ledger is also delivered to the accounting emulators, their
    limits at that multiple of the vendors' (``delivery_bench``).
    """
    n = len(dataset.entries)
    per_second = bench.limit_per_minute / 60.0
    # The first run scans from HOURBRIDGE_START_DATE to the as-of date: the whole data set.
    window = Window(dataset.start, AS_OF.date())
    bound = bench.lower_bound(window)
    row: dict[str, Any] = {
        "source": bench.name,
        "entries": n,
        "limit_per_minute": bench.limit_per_minute,
        "lower_bound_calls": bound.calls,
        "lower_bound_parts": bound.parts,
        "rate_bound_seconds": round(bound.calls / per_second, 2),
    }
    with tempfile.TemporaryDirectory(prefix=f"hourbridge-bench-{bench.name}-") as folder:
        workdir = Path(folder)
        env = sync_env(workdir, dataset, bench)

        step(f"{bench.name} N={n:,}: first sync (lower bound {bound.calls:,} calls, {row['rate_bound_seconds']} s)")
        bench.reset()
        first = run_sync(env, workdir, "first")
        versions_after_first, stored = ledger_state(workdir)
        row["first"] = first | {
            "calls": bench.server.call_count(),
            "throttled": bench.server.rate_limited_count,
            "rows_written": versions_after_first,
        }

        step(f"{bench.name} N={n:,}: second sync, nothing changed")
        bench.reset()
        second = run_sync(env, workdir, "second")
        versions_after_second, _ = ledger_state(workdir)
        # The re-run scans the look-back only; a source that can say what listing that costs gets a ratio.
        listing_calls = getattr(bench, "listing_calls", None)
        lookback = Window(AS_OF.date() - timedelta(days=Settings.model_fields["lookback_days"].default), AS_OF.date())
        row["rerun"] = second | {
            "listing_calls": listing_calls(lookback) if listing_calls is not None else None,
            "calls": bench.server.call_count(),
            "throttled": bench.server.rate_limited_count,
            "rows_written": versions_after_second - versions_after_first,
            "deliveries_sent": None,
        }
        if deliver_scale is not None:
            deliveries = measure_deliveries(
                workdir, env, dataset, scale=deliver_scale, hourbridge=hourbridge_script(), step=step
            )
            row["deliveries"] = deliveries
            row["rerun"]["deliveries_sent"] = sum(d["rerun"]["writes"] for d in deliveries)

        step(f"{bench.name} N={n:,}: baseline fetch")
        bench.reset()
        baseline = bench.baseline()
        row["baseline"] = {
            "strategy": baseline.strategy,
            "calls": baseline.calls,
            "throttled": baseline.throttled,
            "wall_seconds": round(baseline.seconds, 2),
            "entries": baseline.entries,
            "calls_ratio": round(baseline.calls / max(1, row["first"]["calls"]), 2),
            "wall_ratio": round(baseline.seconds / max(1e-9, first["wall_seconds"]), 2),
        }

    built = bench.time_entries()
    # The pipeline's input must be what the sync really stores, or its figure measures something else.
    row["pipeline_input_matches_ledger"] = stored == {e.external_id: e.content_hash for e in built}
    return row, built


def measure_local_pipeline(
    row: dict[str, Any], built: list[TimeEntry], dataset: Dataset, postgres_url: str | None, pipeline_runs: int
) -> None:
    """The local pipeline on each database, ``pipeline_runs`` times on a fresh ledger; the median into ``row``.

    Runs after the source's sandbox has stopped: its HTTP server thread wakes every 20 ms and
    competes for the GIL with the measured work, which the sync process never has to do.
    """
    n = len(dataset.entries)
    window = Window(dataset.start, AS_OF.date())
    row["pipeline"] = []
    databases: list[tuple[str, Any]] = [("sqlite", sqlite_ledger)]
    if postgres_url:
        databases.append(("postgresql", lambda: postgres_ledger(postgres_url)))
    for database, open_ledger in databases:
        runs: list[dict[str, Any]] = []
        for run in range(1, pipeline_runs + 1):
            step(f"{row['source']} N={n:,}: local pipeline on {database} (run {run} of {pipeline_runs})")
            with open_ledger() as engine:  # a fresh, empty ledger every run
                runs.append(measure_pipeline(engine, built, window, mappings_file=EXAMPLE_MAPPINGS, as_of=AS_OF))
        row["pipeline"].append({"database": database} | median_run(runs))
    if not postgres_url:
        row["pipeline"].append({"database": "postgresql", "skipped": f"{POSTGRES_ENV} is not set"})


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median entries/s (the lower middle one for an even count), with every run's rate.

    Other work on a shared machine makes single runs noisy; the median keeps one slow or fast run
    from deciding the figure.
    """
    ordered = sorted(runs, key=lambda figures: figures["entries_per_second"] or 0)
    return ordered[(len(ordered) - 1) // 2] | {"runs": [figures["entries_per_second"] for figures in runs]}


def step(message: str) -> None:
    console.log(message)


# --------------------------------------------------------------------------- output


def judge(value: float | None, limit: float, *, below: bool = False) -> str:
    """'ok' or 'MISSED' against a target (≤ limit, or < limit when ``below``)."""
    if value is None:
        return ""
    met = value < limit if below else value <= limit
    return "ok" if met else "MISSED"


def machine() -> dict[str, Any]:
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text(encoding="utf-8").splitlines()[0].split()
        memory = f"{int(first[1]) / 1024 / 1024:.1f} GiB"
    return {
        "cpus": os.cpu_count(),
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def print_tables(results: dict[str, Any]) -> None:
    scale = results["rate_scale"]
    rows = results["sources"]
    api = Table(title=f"Real `hourbridge sync` against the sandbox (rate scale {scale}× the vendor's limit)")
    for name in (
        "source",
        "N",
        "limit/min",
        "calls",
        "lower bound",
        "calls/bound (≤1.05)",
        "wall s",
        "rate bound s",
        "wall/bound (≤1.15)",
        "429s (<1%)",
        "peak RSS MB (≤300 at 1M)",
    ):
        api.add_column(name, justify="left" if name == "source" else "right")
    for row in rows:
        first = row["first"]
        calls_ratio = first["calls"] / row["lower_bound_calls"]
        wall_ratio = first["wall_seconds"] / row["rate_bound_seconds"]
        share = first["throttled"] / max(1, first["calls"])
        rss_note = judge(first["peak_rss_mb"], TARGETS["peak_rss_mb_at_1m"]) if row["entries"] >= FULL_SIZE else ""
        api.add_row(
            row["source"],
            f"{row['entries']:,}",
            f"{row['limit_per_minute']:,}",
            f"{first['calls']:,}",
            f"{row['lower_bound_calls']:,}",
            f"{calls_ratio:.3f} {judge(calls_ratio, TARGETS['calls_over_lower_bound'])}",
            f"{first['wall_seconds']:.1f}",
            f"{row['rate_bound_seconds']:.1f}",
            f"{wall_ratio:.2f} {judge(wall_ratio, TARGETS['wall_over_rate_bound'])}",
            f"{first['throttled']} ({share:.1%}) {judge(share, TARGETS['throttled_share'], below=True)}",
            f"{first['peak_rss_mb']:.0f} {rss_note}".strip(),
        )
    console.print(api)

    rerun = Table(title="Second run, nothing changed")
    for name in (
        "source",
        "N",
        "calls",
        "look-back listing",
        "calls/listing (≤1.05)",
        "429s",
        "wall s",
        "rows written (0)",
        "deliveries sent",
    ):
        rerun.add_column(name, justify="left" if name == "source" else "right")
    for row in rows:
        again = row["rerun"]
        sent = again.get("deliveries_sent")
        listing = again.get("listing_calls")
        ratio = f"{again['calls'] / listing:.3f} {judge(again['calls'] / listing, 1.05)}" if listing else "n/a"
        rerun.add_row(
            row["source"],
            f"{row['entries']:,}",
            f"{again['calls']:,}",
            f"{listing:,}" if listing else "n/a",
            ratio,
            str(again["throttled"]),
            f"{again['wall_seconds']:.1f}",
            f"{again['rows_written']} {judge(again['rows_written'], TARGETS['rerun_rows_written'])}",
            "n/a" if sent is None else f"{sent} {judge(sent, TARGETS['rerun_deliveries_sent'])}",
        )
    rerun.caption = f"deliveries sent: {DELIVERY_NOTE}"
    console.print(rerun)
    print_deliveries(rows)

    base = Table(title="Baseline fetch (how older connectors page) vs the sync, same sandbox and limit")
    for name in ("source", "N", "baseline calls", "sync calls", "calls ×", "baseline wall s", "sync wall s", "wall ×"):
        base.add_column(name, justify="left" if name == "source" else "right")
    strategies = set()
    for row in rows:
        baseline = row["baseline"]
        strategies.add(f"{row['source']}: {baseline['strategy']}")
        base.add_row(
            row["source"],
            f"{row['entries']:,}",
            f"{baseline['calls']:,}",
            f"{row['first']['calls']:,}",
            f"{baseline['calls_ratio']:.2f}",
            f"{baseline['wall_seconds']:.1f}",
            f"{row['first']['wall_seconds']:.1f}",
            f"{baseline['wall_ratio']:.2f}",
        )
    base.caption = "; ".join(sorted(strategies)) + ". The baseline only fetches; the sync also stores and maps."
    console.print(base)

    runs = results.get("pipeline_runs", 1)
    local = Table(
        title="Local pipeline: built entries → ledger upsert (batches) → mapping"
        + (f" (median of {runs} runs)" if runs > 1 else "")
    )
    for name in (
        "source",
        "N",
        "database",
        "ingest s",
        "map s",
        "entries/s (≥20,000 on SQLite)",
        "every run's entries/s",
        "input = ledger",
    ):
        local.add_column(name, justify="left" if name in ("source", "database") else "right")
    for row in rows:
        for figures in row["pipeline"]:
            if "skipped" in figures:
                local.add_row(
                    row["source"], f"{row['entries']:,}", figures["database"], "", "", figures["skipped"], "", ""
                )
                continue
            rate = figures["entries_per_second"]
            note = (
                judge(-rate, -TARGETS["pipeline_sqlite_entries_per_second"]) if figures["database"] == "sqlite" else ""
            )
            local.add_row(
                row["source"],
                f"{row['entries']:,}",
                figures["database"],
                f"{figures['ingest_seconds']:.1f}",
                f"{figures['map_seconds']:.1f}",
                f"{rate:,} {note}".strip(),
                ", ".join(f"{run:,}" for run in figures.get("runs", [rate])),
                "yes" if row["pipeline_input_matches_ledger"] else "NO",
            )
    console.print(local)

    if results.get("mappings"):
        engine = Table(title="Mapping engine alone (tests/bench/bench_mappings.py, one core)")
        for name in ("rules", "entries", "entries/s", "mapped share", "compile s"):
            engine.add_column(name, justify="right")
        for figure in results["mappings"]:
            engine.add_row(
                f"{figure['rules']:,}",
                f"{figure['entries']:,}",
                f"{figure['entries_per_second']:,}",
                f"{figure['mapped_share']:.0%}",
                f"{figure['compile_seconds']}",
            )
        console.print(engine)
    m = results["machine"]
    console.print(
        f"Machine: {m['cpus']} CPUs, {m['memory']} RAM, Python {m['python']}; "
        f"total {results['total_seconds']:.0f} s; written to {results['output']}"
    )


def print_deliveries(rows: list[dict[str, Any]]) -> None:
    delivered = [(row, figures) for row in rows for figures in row.get("deliveries", [])]
    if not delivered:
        return
    table = Table(title="`hourbridge deliver` of the synced ledger to the accounting emulators, their limits on")
    for name in (
        "sink",
        "ledger of",
        "N",
        "records",
        "calls",
        "writes",
        "429s",
        "wall s",
        "rate bound s",
        "wall/bound (≤1.15)",
        "re-run calls",
        "re-run writes (0)",
    ):
        table.add_column(name, justify="left" if name in ("sink", "ledger of") else "right")
    bounds: list[str] = []
    for row, figures in delivered:
        first, again = figures["first"], figures["rerun"]
        ratio = first["wall_seconds"] / max(1e-9, first["rate_bound_seconds"])
        table.add_row(
            figures["sink"],
            row["source"],
            f"{row['entries']:,}",
            f"{figures['records']:,}",
            f"{first['calls']:,}",
            f"{first['writes']:,}",
            str(first["throttled"]),
            f"{first['wall_seconds']:.1f}",
            f"{first['rate_bound_seconds']:.1f}",
            f"{ratio:.2f} {judge(ratio, TARGETS['wall_over_rate_bound'])}",
            f"{again['calls']:,}",
            f"{again['writes']} {judge(again['writes'], TARGETS['rerun_deliveries_sent'])}",
        )
        bounds.append(f"{figures['sink']} N={row['entries']:,}: {first['rate_bound_by']}")
    table.caption = "rate bound = " + "; ".join(bounds)
    console.print(table)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--n",
        type=int,
        action="append",
        metavar="ENTRIES",
        help=f"entries in the data set; repeat for several (default: {', '.join(f'{n:,}' for n in DEFAULT_SIZES)})",
    )
    parser.add_argument("--full", action="store_true", help=f"also measure {FULL_SIZE:,} entries")
    parser.add_argument(
        "--rate-scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply each vendor's real rate limit by F, for the sandbox and the connector alike (default 1.0)",
    )
    parser.add_argument("--source", action="append", help="only these sources (default: every registered one)")
    parser.add_argument(
        "--skip-source", action="append", default=[], help="leave out this source (e.g. asana-compact); repeatable"
    )
    parser.add_argument("--skip-mappings", action="store_true", help="leave out the mapping-engine bench")
    parser.add_argument(
        "--skip-deliveries", action="store_true", help="leave out the deliveries to the QuickBooks and Xero emulators"
    )
    parser.add_argument(
        "--pipeline-runs",
        type=int,
        default=3,
        metavar="K",
        help="local pipeline runs per source, N and database, each on a fresh ledger; the median is reported "
        "(default 3)",
    )
    parser.add_argument("--output", type=Path, default=HERE / "results.json", help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.rate_scale <= 0:
        parser.error("--rate-scale must be positive")
    if args.n and any(n < 1 for n in args.n):
        parser.error("--n must be at least 1")
    if args.pipeline_runs < 1:
        parser.error("--pipeline-runs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sorted(set(args.n or DEFAULT_SIZES) | ({FULL_SIZE} if args.full else set()))
    sources = registered()
    if args.source:
        unknown = set(args.source) - set(sources)
        if unknown:
            console.print(f"unknown source(s) {', '.join(sorted(unknown))}; known: {', '.join(sources)}")
            return 2
        # ``--source asana`` runs both Asana list behaviours (asana, asana-compact).
        sources = {
            name: factory
            for name, factory in sources.items()
            if name in args.source or name.split("-")[0] in args.source
        }
    unknown = set(args.skip_source) - set(registered())
    if unknown:
        console.print(f"unknown source(s) {', '.join(sorted(unknown))}; known: {', '.join(registered())}")
        return 2
    sources = {name: factory for name, factory in sources.items() if name not in args.skip_source}
    postgres_url = os.environ.get(POSTGRES_ENV) or None
    if postgres_url is None:
        console.log(f"{POSTGRES_ENV} is not set: the PostgreSQL rows are skipped")
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for n in sizes:
        step(f"generating the data set: {n:,} entries over {DAYS} days")
        dataset = generate_dataset(SEED, anchor=ANCHOR, days=DAYS, entries=n)
        for index, factory in enumerate(sources.values()):
            limit = max(1, round(factory.vendor_limit_per_minute * args.rate_scale))
            # Deliveries cost the same whichever tool the time came from: measured once per N.
            deliver_scale = None if args.skip_deliveries or index > 0 else args.rate_scale
            with factory(dataset, limit) as bench:
                row, built = measure_source(bench, dataset, deliver_scale=deliver_scale)
            measure_local_pipeline(row, built, dataset, postgres_url, args.pipeline_runs)
            rows.append(row)
            del built
        del dataset
    mapping_figures: list[dict[str, Any]] = []
    if not args.skip_mappings:
        step("mapping engine bench (bench_mappings.run)")
        from tests.bench import bench_mappings

        mapping_figures = bench_mappings.run()
    results = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "rate_scale": args.rate_scale,
        "pipeline_runs": args.pipeline_runs,
        "seed": SEED,
        "as_of": AS_OF.isoformat(),
        "days": DAYS,
        "targets": TARGETS,
        "deliveries_note": DELIVERY_NOTE,
        "sources": rows,
        "mappings": mapping_figures,
        "total_seconds": round(time.perf_counter() - started, 1),
        "output": str(args.output),
    }
    args.output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print_tables(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
