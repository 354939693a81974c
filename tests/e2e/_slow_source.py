"""`hourbridge` with a "slow" test source whose nth window waits for the test: signals arrive mid-window."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import ClassVar

from pydantic import BaseModel, Field

from connectors.base import SourcePlugin, register_source
from connectors.model import Container, Person, Scope, TaskRef, TimeEntry, Window

MAPPINGS = """\
version: 1
codes:
  ALPHA: {name: Alpha work, client: Alpha Inc, cost_center: CC-1, billable: true}
rules:
  - {id: alpha, priority: 10, code: ALPHA, match: {source: slow, sheet: Alpha}}
"""


class SlowConfig(BaseModel):
    """Where the test listens, and which fetch (1-based) waits for its go-ahead."""

    model_config = {"extra": "forbid"}

    port: int = Field(description="127.0.0.1 port of the test's listener.")
    hold_fetch: int = Field(default=2, description="The fetch that waits.")


class SlowSource:
    """One entry per day; fetch number ``hold_fetch`` says "ready" to the test and waits for "go"."""

    name: ClassVar[str] = "slow"

    def __init__(self, config: SlowConfig) -> None:
        self.config = config
        self.fetches = 0

    def check(self) -> None:
        return None

    def scopes(self) -> Iterable[Scope]:
        return [Scope("slow", "slow-1", "Slow")]

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        self.fetches += 1
        if self.fetches == self.config.hold_fetch:
            # A blocking exchange with the test, not a sleep: the test signals, then lets us go on.
            with socket.create_connection(("127.0.0.1", self.config.port), timeout=120) as conn:
                conn.sendall(b"ready\n")
                conn.recv(16)
        day = window.start
        while day <= window.end:
            yield TimeEntry(
                source="slow",
                account=scope.account,
                external_id=day.isoformat(),
                work_date=day,
                duration_seconds=3600,
                person=Person("ada", "Ada", "ada@example.test"),
                task=TaskRef("t1", "Work"),
                containers=(Container("sheet", "Alpha", "Alpha"),),
            )
            day += timedelta(days=1)

    def stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return None


def main() -> None:
    register_source(
        SourcePlugin(
            name="slow",
            label="Slow tracker",
            factory=SlowSource,
            config=SlowConfig,
            containers=("sheet",),
            gate="none",
            key_setting="PORT",
        )
    )
    from sync.cli.app import app

    app(sys.argv[1:], prog_name="hourbridge")


if __name__ == "__main__":
    main()
