"""The Source protocol every PM-tool connector implements, and the registry that finds them by name."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Protocol, runtime_checkable

from connectors.model import Scope, TimeEntry, Window


@runtime_checkable
class Source(Protocol):
    """A PM tool. Stateless: windows and cursors are planned by the caller.

    A source that cannot filter by date may set ``max_window_days`` (a ClassVar) so the caller hands
    it whole windows instead of re-reading everything once per chunk.
    """

    name: ClassVar[str]

    def check(self) -> None:
        """Raise ``ConfigError`` with an admin-readable message when the credential cannot work."""

    def scopes(self) -> Iterable[Scope]:
        """The workspaces / teams / accounts to pull from."""

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        """Every entry whose work date falls in ``window``; restartable, no side effects."""

    def stats(self) -> dict[str, int]:
        """Counters since construction: API calls, retries, 429s (for run records and benchmarks)."""

    def close(self) -> None:
        """Release connections and threads."""


SourceFactory = Callable[..., Source]

_SOURCES: dict[str, SourceFactory] = {}


def register_source(name: str) -> Callable[[Any], Any]:
    def decorator(factory: Any) -> Any:
        _SOURCES[name] = factory
        return factory

    return decorator


def source_factory(name: str) -> SourceFactory:
    try:
        return _SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(_SOURCES)) or "none"
        raise KeyError(f"unknown source {name!r} (known: {known})") from None


def registered_sources() -> list[str]:
    return sorted(_SOURCES)
