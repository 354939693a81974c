"""Asana source: native time tracking through the official SDK."""

from connectors.asana.config import AsanaConfig
from connectors.asana.source import AsanaSource

__all__ = ["AsanaConfig", "AsanaSource"]
