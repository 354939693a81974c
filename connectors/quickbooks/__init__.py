"""QuickBooks Online sink: time written as TimeActivity records through the v3 REST API (``quickbooks``)."""

from typing import Any

from connectors.base import SinkLines, SinkPlugin, register_sink
from connectors.quickbooks.config import QuickBooksConfig, QuickBooksSettings
from connectors.quickbooks.render import QuickBooksIds, render_time_activity
from connectors.quickbooks.sink import QuickBooksSink


def _lines(config: Any) -> SinkLines:
    return SinkLines(config.granularity)


register_sink(
    SinkPlugin(
        name="quickbooks",
        label="QuickBooks Online",
        factory=lambda config, token: QuickBooksSink(config, token=token),
        config=QuickBooksSettings,
        lines=_lines,
        oauth=True,
        payee_field="quickbooks_vendor",
        bills=True,
    )
)

__all__ = ["QuickBooksConfig", "QuickBooksIds", "QuickBooksSettings", "QuickBooksSink", "render_time_activity"]
