"""Build the configured sources and sinks from the settings and the registry (the only place that constructs them)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Engine

from connectors.base import FileOutput, Sink, Source, sink_plugins, source_plugins
from connectors.oauth import Provider
from sync.delivery.desired import SinkSpec
from sync.settings import Settings


def build_sources(settings: Settings) -> dict[str, Source]:
    """Construct every enabled source; a misconfigured one raises ConfigError naming its setting."""
    sources: dict[str, Source] = {}
    try:
        for plugin in source_plugins():
            config = settings.source_config(plugin.name)
            if config is not None:
                sources[plugin.name] = plugin.factory(config)
    except BaseException:
        for source in sources.values():
            source.close()
        raise
    return sources


def sink_specs(settings: Settings) -> dict[str, SinkSpec]:
    """How the planner builds each configured sink's lines."""
    specs: dict[str, SinkSpec] = {}
    for plugin in sink_plugins():
        config = settings.sink_config(plugin.name)
        if config is None:
            continue
        lines = plugin.lines(config)
        specs[plugin.name] = SinkSpec(
            plugin.name, lines.granularity, lines.tracking_categories, drop_descriptions=settings.drop_descriptions
        )
    return specs


def build_sinks(settings: Settings, engine: Engine) -> dict[str, Sink]:
    """Construct every configured accounting sink (OAuth tokens from the store when connected)."""
    from sync.admin.oauth import access_token_source

    sinks: dict[str, Sink] = {}
    try:
        for plugin in sink_plugins():
            config = settings.sink_config(plugin.name)
            if config is None:
                continue
            # OAuth sinks are the providers connectors.oauth knows (QuickBooks, Xero).
            provider = cast(Provider, plugin.name)
            if plugin.file_factory is not None:
                output = FileOutput(mode=settings.file_permissions, csv_bom=settings.csv_bom)
                sinks[plugin.name] = plugin.file_factory(config, output)
                continue
            token = access_token_source(settings, engine, provider) if plugin.oauth else None
            sinks[plugin.name] = plugin.factory(config, token)
    except BaseException:
        for sink in sinks.values():
            sink.close()
        raise
    return sinks


def no_source_message() -> str:
    """What to set when no source is configured, naming every registered source's key setting."""
    # Sources without a key setting (file imports) are never pulled; the inbox folder is their setting.
    names = [
        f"HOURBRIDGE_{plugin.name.upper()}__{plugin.key_setting}" for plugin in source_plugins() if plugin.key_setting
    ]
    names.append("HOURBRIDGE_INBOX_DIR")
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"no source is configured: set {listed} (see `hourbridge config`)"
