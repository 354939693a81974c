"""monday.com source: native time tracking columns read through the GraphQL API (registered as ``monday``)."""

from connectors.base import SourcePlugin, register_source
from connectors.errors import DailyLimitError
from connectors.monday.config import MondayConfig
from connectors.monday.source import MondaySource

register_source(
    SourcePlugin(
        name="monday",
        label="monday.com",
        factory=MondaySource,
        config=MondayConfig,
        containers=("board", "group"),
        gate="settled",
        gate_help="Gate of monday.com time (monday has no approvals).",
    )
)

__all__ = ["DailyLimitError", "MondayConfig", "MondaySource"]
