"""ClickUp source: native time tracking through the v2 REST API (registered as ``clickup``)."""

from connectors.base import SourcePlugin, register_source
from connectors.clickup.config import ClickUpConfig
from connectors.clickup.source import ClickUpSource

register_source(
    SourcePlugin(
        name="clickup",
        label="ClickUp",
        factory=ClickUpSource,
        config=ClickUpConfig,
        containers=("space", "folder", "list"),
        gate="settled",
        gate_help="Gate of ClickUp time (approved needs approval data).",
    )
)

__all__ = ["ClickUpConfig", "ClickUpSource"]
