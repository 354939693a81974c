"""Clockify source: a workspace's time through the detailed report, or one user's own entries (``clockify``)."""

from connectors.base import SourcePlugin, register_source
from connectors.clockify.config import ClockifyConfig
from connectors.clockify.source import ClockifySource

register_source(
    SourcePlugin(
        name="clockify",
        label="Clockify",
        factory=ClockifySource,
        config=ClockifyConfig,
        containers=("client", "project"),
        gate="settled",
        gate_help="Gate of Clockify time (approved needs Clockify's timesheet approvals).",
        # The workspace feed covers its window, the ``me`` feed only its user's slice: ``covered`` says which.
        coverage="snapshot",
    )
)

__all__ = ["ClockifyConfig", "ClockifySource"]
