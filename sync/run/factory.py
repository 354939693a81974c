"""Build the configured sources and sinks from the settings (the only place that constructs them)."""

from __future__ import annotations

from sqlalchemy import Engine

from connectors.base import Source
from connectors.delivery import Sink
from sync.delivery.desired import SinkSpec
from sync.settings import Settings


def build_sources(settings: Settings) -> dict[str, Source]:
    """Construct every enabled source; a misconfigured one raises ConfigError naming its setting."""
    from connectors.asana import AsanaSource
    from connectors.clickup import ClickUpSource
    from connectors.monday import MondaySource

    sources: dict[str, Source] = {}
    try:
        if settings.asana is not None:
            sources["asana"] = AsanaSource(settings.asana)
        if settings.clickup is not None:
            sources["clickup"] = ClickUpSource(settings.clickup)
        if settings.monday is not None:
            sources["monday"] = MondaySource(settings.monday)
    except BaseException:
        for source in sources.values():
            source.close()
        raise
    return sources


def sink_specs(settings: Settings) -> dict[str, SinkSpec]:
    """How the planner builds each configured sink's lines."""
    specs: dict[str, SinkSpec] = {}
    if settings.quickbooks is not None:
        specs["quickbooks"] = SinkSpec(
            "quickbooks", settings.quickbooks.granularity, drop_descriptions=settings.drop_descriptions
        )
    if settings.xero is not None:
        specs["xero"] = SinkSpec(
            "xero",
            settings.xero.line_granularity,
            tuple(settings.xero.tracking_categories),
            drop_descriptions=settings.drop_descriptions,
        )
    return specs


def build_sinks(settings: Settings, engine: Engine) -> dict[str, Sink]:
    """Construct every configured accounting sink (OAuth tokens from the store when connected)."""
    from connectors.quickbooks import QuickBooksSink
    from connectors.xero import XeroSink
    from sync.admin.oauth import access_token_source

    sinks: dict[str, Sink] = {}
    try:
        if settings.quickbooks is not None:
            token = access_token_source(settings, engine, "quickbooks")
            sinks["quickbooks"] = QuickBooksSink(settings.quickbooks, token=token)
        if settings.xero is not None:
            token = access_token_source(settings, engine, "xero")
            sinks["xero"] = XeroSink(settings.xero, token=token)
    except BaseException:
        for sink in sinks.values():
            sink.close()
        raise
    return sinks
