"""Rich progress bars of the CLI: one bar per label with its count and total, finished when the work is done."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class CountColumn(ProgressColumn):
    """``1,234 of 5,000 entries`` when the total is known, ``1,234 entries`` while it is not."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        done = int(task.completed)
        if task.total is None:
            return Text(f"{done:,} {self.unit}")
        return Text(f"{done:,} of {int(task.total):,} {self.unit}")


class ProgressBars:
    """The ``(label, count)`` callback the run stages and the ledger copy report progress to.

    Each label gets a bar. Labels run one after another (a scope's windows, then a sink's
    deliveries), so a new label finishes the bars before it: their spinners stop and their
    totals stand at what was counted. ``finish`` does the same for the last one.
    """

    def __init__(self, progress: Progress, totals: Mapping[str, int] | None = None) -> None:
        self._progress = progress
        self._totals = dict(totals or {})
        self._tasks: dict[str, TaskID] = {}

    def __call__(self, label: str, count: int) -> None:
        task = self._tasks.get(label)
        if task is None:
            self.finish()
            task = self._tasks[label] = self._progress.add_task(label, total=self._totals.get(label))
        self._progress.advance(task, count)

    def finish(self) -> None:
        """Every bar done: its total is what it counted (or the total it was given, when that is more)."""
        for task_id in self._tasks.values():
            task = self._progress.tasks[task_id]
            if not task.finished:
                self._progress.update(task_id, total=max(task.total or 0, task.completed), completed=task.completed)
                self._progress.stop_task(task_id)


@contextmanager
def progress_bars(
    console: Console, enabled: bool = True, *, unit: str = "entries", totals: Mapping[str, int] | None = None
) -> Iterator[ProgressBars | None]:
    """Progress bars on a terminal; nothing at all off one (cron, journald, CI, a pipe: logs say it there).

    On a terminal the finished bars stay on screen with their totals; nothing keeps redrawing.
    """
    if not enabled or not console.is_terminal:
        yield None
        return
    with Progress(
        SpinnerColumn(finished_text="[green]✓[/]"),
        TextColumn("{task.description}"),
        BarColumn(bar_width=None),
        CountColumn(unit),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        bars = ProgressBars(progress, totals)
        try:
            yield bars
        finally:
            bars.finish()
