"""Asana source: native time tracking through the official SDK (registered as ``asana``)."""

from connectors.asana.config import AsanaConfig
from connectors.asana.source import AsanaSource
from connectors.base import SourcePlugin, register_source

register_source(
    SourcePlugin(
        name="asana",
        label="Asana",
        factory=AsanaSource,
        config=AsanaConfig,
        containers=("project",),
        gate="approved",
        gate_help="approved = only entries whose timesheet is APPROVED; settled = after the settle delay; none.",
    )
)

__all__ = ["AsanaConfig", "AsanaSource"]
