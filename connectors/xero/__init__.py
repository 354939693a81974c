"""Xero sink: time written as Projects API time entries or as draft ACCPAY bills with tracking."""

from connectors.xero.config import XeroConfig
from connectors.xero.render import render_bill, render_line_item, render_time_entry
from connectors.xero.sink import XeroSink

__all__ = ["XeroConfig", "XeroSink", "render_bill", "render_line_item", "render_time_entry"]
