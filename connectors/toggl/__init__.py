"""Toggl Track source: a workspace's time through the Reports API v3, or one user's own through API v9 (``toggl``)."""

from connectors.base import SourcePlugin, register_source
from connectors.toggl.config import TogglConfig
from connectors.toggl.source import TogglSource

register_source(
    SourcePlugin(
        name="toggl",
        label="Toggl Track",
        factory=TogglSource,
        config=TogglConfig,
        containers=("client", "project"),
        gate="settled",
        gate_help="Gate of Toggl Track time (Toggl has no approvals, so approved holds everything).",
        # The workspace feed covers its window, the ``me`` feed only its user's slice: ``covered`` says which.
        coverage="snapshot",
    )
)

__all__ = ["TogglConfig", "TogglSource"]
