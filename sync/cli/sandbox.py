"""The `sandbox` command of the CLI: the emulators in the foreground, and the settings that use them."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from sync.cli.shared import admin_errors, say

READY = "# ready: the emulators answer until Ctrl-C"


@admin_errors
def sandbox(
    port: Annotated[
        int,
        typer.Option(
            help=(
                "First port: Asana, ClickUp, monday.com, QuickBooks, Xero, Harvest, Toggl Track, Clockify "
                "on it and the next seven (0: free ports)."
            )
        ),
    ] = 8700,
    mappings: Annotated[
        Path | None,
        typer.Option(
            help="Your mapping document: QuickBooks and Xero then know the names it uses (default: the demo's)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sandbox data set.")] = 7,
) -> None:
    """Run every emulator on 127.0.0.1 with sandbox data until Ctrl-C, and print the settings that use them.

    Try your own mapping document before connecting real accounts: in another shell, paste the
    printed `export` lines, then `hourbridge sync`, `hourbridge unmapped`, `hourbridge report`.
    The ledger and reports go to the current folder (hourbridge-sandbox.db, hourbridge-sandbox-out/).
    """
    from sync.ops.sandbox import run_sandboxes
    from sync.ops.schedule import StopFlag, stop_on_signals

    stop = StopFlag()
    today = datetime.now(UTC).date()
    with run_sandboxes(port=port, seed=seed, today=today, mappings_file=mappings, workdir=Path.cwd()) as session:
        say(f"# hourbridge sandbox: sandbox data {session.dataset.start} .. {session.dataset.anchor}")
        for name, url in session.urls.items():
            say(f"#   {name:<10} {url}")
        say("# In another shell, paste these lines, then run `hourbridge sync` (and `unmapped`, `report`, …):")
        for line in session.exports():
            say(line)
        say(READY)
        sys.stdout.flush()
        with stop_on_signals(stop):
            while not stop.is_set():
                stop.wait(0.5)
    say(f"# sandbox stopped ({stop.reason})")


def register(app: typer.Typer) -> None:
    """Add `sandbox` to the `hourbridge` app."""
    app.command()(sandbox)
