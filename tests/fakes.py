"""Test doubles shared by the suites: a hand-moved clock, a PM tool and an accounting sink in memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any, ClassVar, TypedDict

from connectors.delivery import Holding, Line, Op, OpKind, Receipt, billable_minutes
from connectors.model import Container, Person, Scope, TaskRef, TimeEntry, Window


def no_sleep(_: float) -> None:
    """Tests never sleep: waits are recorded by a fake clock (or not at all) instead."""


class FakeClock:
    """Seconds (monotonic or Unix, from ``start``) that move only when ``sleep`` or ``advance`` is called.

    Tests never sleep for real: the code under test gets ``clock`` and ``clock.sleep`` injected, and
    the test reads back how long it would have waited (``sleeps``, ``slept``) and how often the time
    was read (``reads``).
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.reads = 0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.reads += 1
            return self.now

    @property
    def slept(self) -> float:
        """Seconds waited in all."""
        with self._lock:
            return sum(self.sleeps)

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class Crash(BaseException):
    """Stands in for the process dying (SIGKILL): nothing in the code under test catches it."""


class MemoryRecord(TypedDict):
    """One record ``MemorySink`` holds: the key of the op that last wrote it, the line, its version token."""

    key: str
    line: Line
    token: str


class MemorySink:
    """An accounting sink in memory: records keyed by remote id, each carrying the op's key marker.

    ``crash_after_commit`` stores the next push's records and then dies before any receipt is
    returned, the way a killed process leaves an op whose outcome nobody recorded. A sink of another
    name is a subclass that sets ``name``.
    """

    name: ClassVar[str] = "quickbooks"

    def __init__(self) -> None:
        self.records: dict[str, MemoryRecord] = {}
        self.pushes: list[list[str]] = []
        self.finds = 0
        self.find_manys = 0
        self.holding_reads = 0
        self.crash_after_commit = False
        self.refuse: set[str] = set()  # line keys whose writes are refused
        self._next = 1

    def check(self) -> None:
        return None

    def push(self, ops: Sequence[Op]) -> Iterator[Receipt]:
        self.pushes.append([op.idempotency_key for op in ops])
        receipts = []
        for op in ops:
            now = datetime.now(UTC)
            if op.line.line_key in self.refuse and op.kind != "delete":
                receipts.append(Receipt(op.idempotency_key, op.kind, "failed", None, None, now, "refused"))
                continue
            if op.kind == "create":
                remote = str(self._next)
                self._next += 1
                self.records[remote] = {"key": op.idempotency_key, "line": op.line, "token": "0"}
            elif op.kind == "update":
                assert op.remote_id is not None  # Op refuses an update without one
                remote = op.remote_id
                record = self.records[remote]
                record.update({"key": op.idempotency_key, "line": op.line, "token": str(int(record["token"]) + 1)})
            else:
                assert op.remote_id is not None  # Op refuses a delete without one
                remote = op.remote_id
                self.records.pop(remote, None)
            token = self.records[remote]["token"] if remote in self.records else None
            receipts.append(Receipt(op.idempotency_key, op.kind, "ok", remote, token, now))
        if self.crash_after_commit:
            self.crash_after_commit = False
            raise Crash("killed between send and receipt")
        yield from receipts

    def find(self, idempotency_key: str, line: Line, kind: OpKind = "create") -> Receipt | None:
        self.finds += 1
        for remote, record in self.records.items():
            if record["key"] == idempotency_key:
                return Receipt(idempotency_key, kind, "ok", remote, record["token"], datetime.now(UTC))
        return None

    def find_many(self, keys: Sequence[str], lines: Sequence[Line]) -> dict[str, Receipt]:
        self.find_manys += 1
        wanted = set(keys)
        return {
            record["key"]: Receipt(record["key"], "create", "ok", remote, record["token"], datetime.now(UTC))
            for remote, record in self.records.items()
            if record["key"] in wanted
        }

    def holdings(self, start: date, end: date, lines: Sequence[Line]) -> Iterator[Holding]:
        self.holding_reads += 1
        for remote, record in list(self.records.items()):
            line = record["line"]
            if start <= line.work_date <= end:
                yield Holding(record["key"], remote, line.work_date, billable_minutes(line.seconds), record["token"])

    def stats(self) -> dict[str, int]:
        return {"calls": len(self.pushes)}

    def close(self) -> None:
        return None

    def lines(self) -> list[Line]:
        return [record["line"] for record in self.records.values()]


# The people ListSource entries are logged by (one with an email the mapping document matches).
PEOPLE = {"u1": Person("u1", "Zoë Müller", "zoe@example.com"), "u2": Person("u2", "Liam O'Connor", "liam@example.com")}


class ListSource:
    """A PM tool whose entries the test edits between runs."""

    name: ClassVar[str] = "asana"

    def __init__(self) -> None:
        self.entries: dict[str, TimeEntry] = {}

    def put(
        self, ident: str, minutes: int, day: date, *, person: str = "u1", project: str = "Website", **more: Any
    ) -> TimeEntry:
        entry = TimeEntry(
            source="asana",
            account="ws1",
            external_id=ident,
            work_date=day,
            duration_seconds=minutes * 60,
            person=PEOPLE[person],
            task=TaskRef(f"t-{project}", f"{project} task"),
            containers=(Container("project", f"p-{project}", project),),
            **more,
        )
        self.entries[ident] = entry
        return entry

    def check(self) -> None:
        return None

    def scopes(self) -> Iterator[Scope]:
        yield Scope("asana", "ws1", "Workspace")

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        for entry in list(self.entries.values()):
            if window.start <= entry.work_date <= window.end:
                yield entry

    def stats(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        return None
