"""Calls per 1,000 entries of the tracker sources (Harvest, Toggl Track, Clockify), measured on their emulators.

Run: ``python tests/bench/trackers_bench.py [--n 1000] [--days 28]``. Prints one row per source and feed:
the entries read, the API calls made and the calls per 1,000 entries (the README quotes these figures).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from connectors.base import Source
from connectors.model import Window
from connectors.sandbox.clockify import ClockifySandbox
from connectors.sandbox.dataset import Dataset, generate_dataset
from connectors.sandbox.harvest import HarvestSandbox
from connectors.sandbox.toggl import TogglSandbox
from tests.contract.makers_clockify import clockify_source
from tests.contract.makers_harvest import harvest_source
from tests.contract.makers_toggl import toggl_source
from tests.fakes import FakeClock

ANCHOR = date(2026, 11, 20)


@contextmanager
def _harvest(ds: Dataset, member: bool) -> Iterator[Source]:
    with (
        HarvestSandbox(ds) as sandbox,
        harvest_source(sandbox, token=sandbox.member_token if member else sandbox.token) as source,
    ):
        yield source


@contextmanager
def _toggl(ds: Dataset, member: bool) -> Iterator[Source]:
    clock = FakeClock()
    options: dict[str, Any] = {"token": None, "feed": "me"} if member else {}
    with TogglSandbox(ds, clock=clock) as sandbox:
        if member:
            options["token"] = sandbox.member_token
        with toggl_source(sandbox, clock, **options) as source:
            yield source


@contextmanager
def _clockify(ds: Dataset, member: bool) -> Iterator[Source]:
    clock = FakeClock()
    with ClockifySandbox(ds, clock=clock, plan="paid") as sandbox:
        options: dict[str, Any] = {"plan": "paid"}
        if member:
            options.update(token=sandbox.member_token, feed="me")
        with clockify_source(sandbox, clock, **options) as source:
            yield source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="entries in the data set")
    parser.add_argument("--days", type=int, default=28, help="days the entries spread over (one sync window)")
    args = parser.parse_args()
    ds = generate_dataset(7, anchor=ANCHOR, days=args.days, entries=args.n)
    window = Window(ds.start, ds.anchor)
    print(f"{args.n} entries over {args.days} days ({window.start}..{window.end})")
    print(f"{'source':<10} {'feed':<28} {'entries':>8} {'calls':>6} {'calls/1,000':>12}")
    for name, make in (("harvest", _harvest), ("toggl", _toggl), ("clockify", _clockify)):
        for member in (False, True):
            with make(ds, member) as source:
                source.check()
                n = sum(1 for scope in source.scopes() for _ in source.fetch(scope, window))
                calls = source.stats()["api_calls"]
            feed = "own time (one person)" if member else "account/workspace (everyone)"
            per = calls * 1000 / n if n else 0.0
            print(f"{name:<10} {feed:<28} {n:>8} {calls:>6} {per:>12.1f}")


if __name__ == "__main__":
    main()
