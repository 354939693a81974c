"""ClickUp source: native time tracking through the v2 REST API."""

from connectors.clickup.config import ClickUpConfig
from connectors.clickup.source import ClickUpSource

__all__ = ["ClickUpConfig", "ClickUpSource"]
