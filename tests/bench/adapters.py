"""The seam between the benchmark harness and one source: what every benchmarked PM tool must provide."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import ClassVar, Protocol

from connectors.model import TimeEntry, Window
from connectors.sandbox.dataset import Dataset


@dataclass(frozen=True, slots=True)
class CallBound:
    """The fewest API calls that can fetch a data set, and what each part of that figure pays for."""

    calls: int
    parts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BaselineFigures:
    """What the older fetch strategy cost against the same sandbox."""

    calls: int
    throttled: int
    seconds: float
    entries: int
    strategy: str


class Counters(Protocol):
    """The sandbox's own request and 429 counters (a ``SandboxServer``, or a sandbox that keeps its own)."""

    def call_count(self) -> int: ...

    @property
    def rate_limited_count(self) -> int: ...


class SourceBench(Protocol):
    """One PM tool's sandbox, running with a data set at a rate limit, plus the figures only it knows.

    Used as a context manager: entering starts the sandbox on 127.0.0.1, leaving stops it.
    """

    name: ClassVar[str]
    vendor_limit_per_minute: ClassVar[int]
    """The vendor's documented limit for one credential; ``--rate-scale`` multiplies it."""

    limit_per_minute: int

    def __init__(self, dataset: Dataset, limit_per_minute: int) -> None:
        """Build the sandbox for ``dataset`` limited to ``limit_per_minute`` (not started yet)."""
        ...

    def __enter__(self) -> SourceBench: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    @property
    def server(self) -> Counters:
        """The sandbox's call and 429 counters: the figures of record."""
        ...

    def reset(self) -> None:
        """Zero the counters and empty the rate-limit window, so each phase is measured on its own."""
        ...

    def sync_env(self) -> dict[str, str]:
        """HOURBRIDGE_ variables that point a real `hourbridge sync` at this sandbox at this rate."""
        ...

    def lower_bound(self, window: Window) -> CallBound:
        """The fewest calls that fetch every entry of ``window`` with what the ledger needs about them."""
        ...

    def baseline(self) -> BaselineFigures:
        """Fetch everything the way older connectors do, through the same limiter and retry policy."""
        ...

    def time_entries(self) -> list[TimeEntry]:
        """The data set as the source's connector yields it (for the local pipeline, without the API)."""
        ...


def registered() -> dict[str, type[SourceBench]]:
    """Every source the harness measures, by name, in table order."""
    from tests.bench.asana_bench import AsanaBench, AsanaCompactBench
    from tests.bench.clickup_bench import ClickUpBench
    from tests.bench.monday_bench import MondayBench

    # Asana twice: its list may return the full entry (rich) or only what the spec promises (compact).
    return {"asana": AsanaBench, "asana-compact": AsanaCompactBench, "clickup": ClickUpBench, "monday": MondayBench}
