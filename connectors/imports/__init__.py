"""Contractors' own records as files: Clockify, Toggl Track and Harvest exports and hourbridge's timesheet.

Each format is a registered snapshot source (``clockify_export``, ``toggl_export``,
``harvest_export``, ``timesheet``): an imported file replaces exactly the (person, dates) slices it
covers. Files arrive by `hourbridge import` or the inbox folder, never by a scheduled pull, so the
sources built from settings list no scopes.
"""

from collections.abc import Callable
from typing import Any

from connectors.base import Source, SourcePlugin, register_source
from connectors.imports import clockify, harvest, timesheet, toggl
from connectors.imports.config import ACCOUNT, ImportConfig, ImportOptions
from connectors.imports.files import FORMATS, SOURCES, FileSnapshot, ImportFile, NotPulled, read_import
from connectors.imports.problems import ImportRejected, Problem


def _not_pulled(source: str) -> Callable[[Any], Source]:
    return lambda _config: NotPulled(source)


for _module in (clockify, toggl, harvest, timesheet):
    register_source(
        SourcePlugin(
            name=_module.SOURCE,
            label=_module.LABEL,
            factory=_not_pulled(_module.SOURCE),
            config=ImportConfig,
            containers=("client", "project"),
            gate="settled",
            gate_help=f"Gate of {_module.LABEL} time (imported files).",
            coverage="snapshot",
            key_setting="",
        )
    )

__all__ = [
    "ACCOUNT",
    "FORMATS",
    "SOURCES",
    "FileSnapshot",
    "ImportConfig",
    "ImportFile",
    "ImportOptions",
    "ImportRejected",
    "Problem",
    "read_import",
]
