"""QuickBooks Online sink: time written as TimeActivity records through the v3 REST API."""

from connectors.quickbooks.config import QuickBooksConfig
from connectors.quickbooks.render import QuickBooksIds, render_time_activity
from connectors.quickbooks.sink import QuickBooksSink

__all__ = ["QuickBooksConfig", "QuickBooksIds", "QuickBooksSink", "render_time_activity"]
