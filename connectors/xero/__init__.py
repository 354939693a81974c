"""Xero sink: time written as Projects API time entries or as draft ACCPAY bills with tracking (``xero``)."""

from typing import Any

from connectors.base import SinkLines, SinkPlugin, register_sink
from connectors.xero.config import XeroConfig, XeroSettings
from connectors.xero.render import render_bill, render_line_item, render_time_entry
from connectors.xero.sink import XeroBillsSink, XeroProjectsSink, XeroSink


def _lines(config: Any) -> SinkLines:
    return SinkLines(config.line_granularity, tuple(config.tracking_categories))


register_sink(
    SinkPlugin(
        name="xero",
        label="Xero",
        factory=lambda config, token: XeroSink(config, token=token),
        config=XeroSettings,
        lines=_lines,
        oauth=True,
        payee_field="xero_contact",
        bills=True,
    )
)

__all__ = [
    "XeroBillsSink",
    "XeroConfig",
    "XeroProjectsSink",
    "XeroSettings",
    "XeroSink",
    "render_bill",
    "render_line_item",
    "render_time_entry",
]
