"""monday.com source: native time tracking columns read through the GraphQL API."""

from connectors.errors import DailyLimitError
from connectors.monday.config import MondayConfig
from connectors.monday.source import MondaySource

__all__ = ["DailyLimitError", "MondayConfig", "MondaySource"]
