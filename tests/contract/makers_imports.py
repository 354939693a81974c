"""Contract-suite makers for the file imports: the demo's export of each kind, read as a snapshot source.

A file has no credential and no pages: ``page_size`` changes nothing, and the refused-credential case
is skipped. The expected count of a window comes from the written file itself, read with plain csv.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Source
from connectors.imports import FileSnapshot, ImportOptions, read_import
from connectors.model import Window
from connectors.sandbox.dataset import Dataset
from connectors.sandbox.exports import ZONE, write_exports

DATE_COLUMNS = {
    "clockify": ("Start Date", "%m/%d/%Y"),
    "toggl": ("Start date", "%Y-%m-%d"),
    "harvest": ("Date", "%Y-%m-%d"),
    "timesheet": ("date", "%Y-%m-%d"),
}


def file_dates(path: Path, kind: str) -> list[date]:
    column, layout = DATE_COLUMNS[kind]
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return [datetime.strptime(row[column], layout).date() for row in csv.DictReader(handle)]


def maker(kind: str) -> Callable[..., Any]:
    @contextmanager
    def make(dataset: Dataset, **config: Any) -> Iterator[tuple[Source, Callable[[Window], int]]]:
        if "token" in config:
            pytest.skip("an imported file has no credential to refuse")
        with tempfile.TemporaryDirectory() as folder:
            export = next(e for e in write_exports(dataset, Path(folder)) if e.kind == kind)
            contractor = export.contractor if kind == "harvest" else None
            imported = read_import(export.path, "auto", ImportOptions.of(timezone=ZONE.key, contractor=contractor))
            dates = file_dates(export.path, kind)
            yield FileSnapshot(imported), lambda w: sum(1 for day in dates if day in w)

    return make


MAKERS = {
    "clockify_export": maker("clockify"),
    "toggl_export": maker("toggl"),
    "harvest_export": maker("harvest"),
    "timesheet": maker("timesheet"),
}
