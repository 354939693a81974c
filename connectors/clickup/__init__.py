"""ClickUp source: native time tracking through the v2 REST API."""

from connectors.clickup.config import ClickUpConfig
from connectors.clickup.connector import ClickUpSource

__all__ = ["ClickUpConfig", "ClickUpSource"]
