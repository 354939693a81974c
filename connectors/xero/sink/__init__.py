"""The Xero sinks: ``XeroSink(config)`` is the one of ``config.mode`` (Projects time entries or draft bills)."""

from connectors.xero.sink.base import XeroSink, split_remote
from connectors.xero.sink.bills import XeroBillsSink
from connectors.xero.sink.projects import XeroProjectsSink

__all__ = ["XeroBillsSink", "XeroProjectsSink", "XeroSink", "split_remote"]
