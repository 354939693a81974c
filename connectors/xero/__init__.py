"""Xero sink: time written as Projects API time entries or as draft ACCPAY bills with tracking."""

from connectors.xero.config import XeroConfig
from connectors.xero.render import render_bill, render_line_item, render_time_entry
from connectors.xero.sink import XeroBillsSink, XeroProjectsSink, XeroSink

__all__ = [
    "XeroBillsSink",
    "XeroConfig",
    "XeroProjectsSink",
    "XeroSink",
    "render_bill",
    "render_line_item",
    "render_time_entry",
]
