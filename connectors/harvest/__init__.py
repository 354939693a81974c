"""Harvest source: time entries through the API v2 with a personal access token (registered as ``harvest``)."""

from connectors.base import SourcePlugin, register_source
from connectors.harvest.config import HarvestConfig
from connectors.harvest.source import HarvestSource

register_source(
    SourcePlugin(
        name="harvest",
        label="Harvest",
        factory=HarvestSource,
        config=HarvestConfig,
        containers=("client", "project"),
        gate="settled",
        gate_help="Gate of Harvest time (approved needs Harvest's timesheet approvals).",
        # An Administrator's token covers its window, any other token only its own user's slice:
        # the source says which after each fetch (``covered``).
        coverage="snapshot",
    )
)

__all__ = ["HarvestConfig", "HarvestSource"]
