"""The Source and Sink protocols and THE registry of plug-ins: settings, vocabulary and builds derive from it."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from connectors.delivery import Granularity, Holding, Line, Op, OpKind, Receipt
from connectors.model import Coverage, CoverageKind, Scope, TimeEntry, Vocabulary, Window

Gate = Literal["approved", "settled", "none"]

# The built-in vendors, each registering itself in its package's ``__init__``. Third-party plug-ins
# register from a module named in the ``hourbridge.plugins`` entry-point group.
BUILTIN_PLUGINS = (
    "connectors.asana",
    "connectors.clickup",
    "connectors.monday",
    "connectors.harvest",
    "connectors.toggl",
    "connectors.clockify",
    "connectors.quickbooks",
    "connectors.xero",
    "connectors.files",
    "connectors.imports",
)
ENTRY_POINT_GROUP = "hourbridge.plugins"


@runtime_checkable
class Source(Protocol):
    """A PM tool, tracker or file format. Stateless: windows and cursors are planned by the caller.

    A source that cannot filter by date may set ``max_window_days`` (a ClassVar) so the caller hands
    it whole windows instead of re-reading everything once per chunk.
    """

    name: ClassVar[str]

    def check(self) -> None:
        """Raise ``ConfigError`` with an admin-readable message when the credential cannot work."""

    def scopes(self) -> Iterable[Scope]:
        """The workspaces / teams / accounts / uploads to pull from."""

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        """Every entry whose work date falls in ``window``; restartable, no side effects."""

    def stats(self) -> dict[str, int]:
        """Counters since construction: API calls, retries, 429s (for run records and benchmarks)."""

    def close(self) -> None:
        """Release connections and threads."""


KnownEntries = Callable[[Sequence[str]], Mapping[str, TimeEntry]]
"""The ledger's live entries of one scope for some external ids (those it has). A source whose class
sets ``uses_known_entries = True`` is called as ``fetch(scope, window, known=...)`` by the run and may
hand back a stored entry whose listing did not change instead of fetching its details again; other
sources are called as before. Connectors stay stateless: the value comes from ``sync/run``."""


@runtime_checkable
class SnapshotSource(Source, Protocol):
    """A source whose fetch is complete only for named (person, dates) slices (registered as ``snapshot``)."""

    def covered(self, scope: Scope, window: Window) -> Coverage:
        """The slices the finished ``fetch(scope, window)`` was complete for; called after the fetch is drained."""


@runtime_checkable
class Sink(Protocol):
    """An accounting target. Repeat-safe: every op carries its idempotency key."""

    name: ClassVar[str]

    def check(self) -> None:
        """Raise ``ConfigError`` with an admin-readable message when the credential or settings cannot work."""

    def push(self, ops: Sequence[Op]) -> Iterator[Receipt]:
        """Apply ``ops``; one receipt per op, in no promised order."""

    def find(self, idempotency_key: str, line: Line, kind: OpKind = "create") -> Receipt | None:
        """The receipt of the create/update keyed ``idempotency_key`` if the vendor shows it landed, else None."""

    def find_many(self, keys: Sequence[str], lines: Sequence[Line]) -> dict[str, Receipt]:
        """``find`` for a batch: ``keys[i]`` is the key of a write of ``lines[i]``; the ones that landed, by key.

        One read per batch, not one per key (a crash can leave a whole push's outcomes open). The
        receipts say ``create``; the caller knows which kind of op each key was.
        """

    def holdings(self, start: date, end: date, lines: Sequence[Line]) -> Iterator[Holding]:
        """Every record dated ``start..end`` that carries our marker; ``lines`` say where to look (projects, bills)."""

    def stats(self) -> dict[str, int]:
        """Counters since construction: API calls, retries, 429s, and vendor quota left where known."""

    def close(self) -> None:
        """Release connections."""


@dataclass(frozen=True, slots=True)
class SinkLines:
    """How the planner groups time into one sink's lines."""

    granularity: Granularity
    tracking_categories: tuple[str, ...] = ()


def _day_lines(config: Any) -> SinkLines:
    return SinkLines(getattr(config, "granularity", None) or "day")


@dataclass(frozen=True, slots=True)
class SourcePlugin:
    """One registered source: how to build it from its settings section and what the rest derives from it.

    ``config`` is the pydantic model of ``HOURBRIDGE_<NAME>__...``; ``containers`` the container
    kinds mapping rules may match on (outermost first); ``gate`` the default delivery gate
    (``HOURBRIDGE_DELIVERY__<NAME>_GATE``); ``coverage`` what one fetch is complete for.
    """

    name: str
    label: str
    factory: Callable[[Any], Source]
    config: type[BaseModel]
    containers: tuple[str, ...] = ()
    gate: Gate = "settled"
    gate_help: str = ""
    coverage: CoverageKind = "window"
    # The setting the "no source is configured" message asks for (e.g. TOKEN).
    key_setting: str = "TOKEN"


@dataclass(frozen=True, slots=True)
class FileOutput:
    """How a sink that writes files writes them, as the reports are written: exactly ``mode``
    (HOURBRIDGE_FILE_MODE, whatever the umask) and CSV files opening with a UTF-8 byte order mark
    when ``csv_bom`` (HOURBRIDGE_CSV_BOM)."""

    mode: int = 0o640  # HOURBRIDGE_FILE_MODE's default
    csv_bom: bool = True


@dataclass(frozen=True, slots=True)
class SinkPlugin:
    """One registered accounting sink: factory, settings model, and how the planner builds its lines.

    ``factory(config, token)`` gets the OAuth token source when ``oauth`` is set (None otherwise).
    ``file_factory(config, output)``, when set, builds a sink that writes files instead, so they get
    the permissions and byte order mark of every file hourbridge writes.
    ``payee_field`` names the ``people`` key that holds the payee this sink books time to.
    ``bills``: the sink also reads contractors' bills back (its sink has ``bills(start, end)``,
    the ``connectors.bills.BillReader`` protocol), so the invoice check can compare them with the ledger.
    """

    name: str
    label: str
    factory: Callable[[Any, Any], Sink]
    config: type[BaseModel]
    lines: Callable[[Any], SinkLines] = _day_lines
    oauth: bool = False
    payee_field: str | None = None
    bills: bool = False
    file_factory: Callable[[Any, FileOutput], Sink] | None = None


_SOURCES: dict[str, SourcePlugin] = {}
_SINKS: dict[str, SinkPlugin] = {}
_loaded = False


def register_source(plugin: SourcePlugin) -> SourcePlugin:
    """Add (or replace, by name) a source; call it from the plug-in package's ``__init__``."""
    _check_name(plugin.name, _SINKS)
    _SOURCES[plugin.name] = plugin
    return plugin


def register_sink(plugin: SinkPlugin) -> SinkPlugin:
    """Add (or replace, by name) an accounting sink; call it from the plug-in package's ``__init__``."""
    _check_name(plugin.name, _SOURCES)
    _SINKS[plugin.name] = plugin
    return plugin


def unregister(name: str) -> None:
    """Forget a plug-in (tests that register a throwaway one clean up with this)."""
    _SOURCES.pop(name, None)
    _SINKS.pop(name, None)


def _check_name(name: str, other: dict[str, Any]) -> None:
    # The name becomes a settings section (HOURBRIDGE_<NAME>__) and a mapping vocabulary word.
    if not name.isidentifier() or name != name.lower():
        raise ValueError(f"plug-in name {name!r} must be a lower-case identifier")
    if name in other:
        raise ValueError(f"{name!r} is already registered as the other kind of plug-in")


def load_plugins(*, entry_point_group: str | None = ENTRY_POINT_GROUP) -> None:
    """Import the built-in vendors (and installed plug-ins) so they register; idempotent."""
    global _loaded
    if _loaded:
        return
    for module in BUILTIN_PLUGINS:
        importlib.import_module(module)
    if entry_point_group is not None:
        for point in entry_points(group=entry_point_group):
            point.load()
    _loaded = True


def _in_order(plugins: dict[str, Any]) -> list[Any]:
    # Built-ins first, in BUILTIN_PLUGINS order, whichever module happened to be imported first; then
    # the others as they registered. Runs, settings and the README table all list them this way.
    builtin = [module.rsplit(".", 1)[-1] for module in BUILTIN_PLUGINS]
    arrival = list(plugins)
    return sorted(
        plugins.values(),
        key=lambda p: (builtin.index(p.name) if p.name in builtin else len(builtin), arrival.index(p.name)),
    )


def source_plugins() -> list[SourcePlugin]:
    """Every registered source: the built-ins in their fixed order, then the others as they registered."""
    load_plugins()
    return _in_order(_SOURCES)


def sink_plugins() -> list[SinkPlugin]:
    """Every registered sink, in the same order as ``source_plugins``."""
    load_plugins()
    return _in_order(_SINKS)


def source_plugin(name: str) -> SourcePlugin:
    load_plugins()
    try:
        return _SOURCES[name]
    except KeyError:
        known = ", ".join(_SOURCES) or "none"
        raise KeyError(f"unknown source {name!r} (known: {known})") from None


def sink_plugin(name: str) -> SinkPlugin:
    load_plugins()
    try:
        return _SINKS[name]
    except KeyError:
        known = ", ".join(_SINKS) or "none"
        raise KeyError(f"unknown sink {name!r} (known: {known})") from None


def registered_sources() -> list[str]:
    return [plugin.name for plugin in source_plugins()]


def registered_sinks() -> list[str]:
    return [plugin.name for plugin in sink_plugins()]


def vocabulary() -> Vocabulary:
    """The mapping vocabulary of the registered sources (what ``mappings`` may name)."""
    return Vocabulary(tuple((plugin.name, plugin.containers) for plugin in source_plugins()))


def fetch_coverage(source: Source, scope: Scope, window: Window) -> Coverage:
    """What a drained ``fetch(scope, window)`` was complete for, as the source's registration declares."""
    plugin = _SOURCES.get(scope.source)
    if plugin is None or plugin.coverage == "window":
        return Coverage.complete_window()
    if not isinstance(source, SnapshotSource):
        raise TypeError(f"source {scope.source!r} is registered as a snapshot but has no covered() method")
    return source.covered(scope, window)
