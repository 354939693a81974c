"""monday.com source: native time tracking columns read through the GraphQL API."""

from connectors.monday.config import MondayConfig
from connectors.monday.connector import DailyLimitError, MondaySource

__all__ = ["DailyLimitError", "MondayConfig", "MondaySource"]
