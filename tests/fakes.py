"""Test doubles shared by the suites: a hand-moved clock, a PM tool and an accounting sink in memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from typing import Any, ClassVar

from connectors.model import Container, Person, Scope, TaskRef, TimeEntry, Window


class FakeClock:
    """Seconds (monotonic or Unix, from ``start``) that move only when ``sleep`` or ``advance`` is called.

    Tests never sleep for real: the code under test gets ``clock`` and ``clock.sleep`` injected, and
    the test reads back how long it would have waited.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class Crash(BaseException):
    """Stands in for the process dying (SIGKILL): nothing in the code under test catches it."""


class MemorySink:
    """An accounting sink in memory: records keyed by remote id, each carrying the op's key marker.

    ``crash_after_commit`` stores the next push's records and then dies before any receipt is
    returned, the way a killed process leaves an op whose outcome nobody recorded.
    """

    def __init__(self, name: str = "quickbooks") -> None:
        from connectors.delivery import Holding, Line, Op, Receipt  # local: keep this module light

        self._types = (Holding, Line, Op, Receipt)
        self.name = name  # type: ignore[misc]
        self.records: dict[str, dict[str, object]] = {}
        self.pushes: list[list[str]] = []
        self.finds = 0
        self.find_manys = 0
        self.holding_reads = 0
        self.crash_after_commit = False
        self.refuse: set[str] = set()  # line keys whose writes are refused
        self._next = 1

    def check(self) -> None:
        return None

    def push(self, ops):  # type: ignore[no-untyped-def]
        from datetime import UTC, datetime

        Receipt = self._types[3]
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
                record = self.records[op.remote_id]
                record.update(key=op.idempotency_key, line=op.line, token=str(int(record["token"]) + 1))
                remote = op.remote_id
            else:
                self.records.pop(op.remote_id, None)
                remote = op.remote_id
            token = self.records[remote]["token"] if remote in self.records else None
            receipts.append(Receipt(op.idempotency_key, op.kind, "ok", remote, token, now))
        if self.crash_after_commit:
            self.crash_after_commit = False
            raise Crash("killed between send and receipt")
        yield from receipts

    def find(self, idempotency_key, line, kind="create"):  # type: ignore[no-untyped-def]
        from datetime import UTC, datetime

        Receipt = self._types[3]
        self.finds += 1
        for remote, record in self.records.items():
            if record["key"] == idempotency_key:
                return Receipt(idempotency_key, kind, "ok", remote, record["token"], datetime.now(UTC))
        return None

    def find_many(self, keys, lines):  # type: ignore[no-untyped-def]
        from datetime import UTC, datetime

        Receipt = self._types[3]
        self.find_manys += 1
        wanted = set(keys)
        return {
            record["key"]: Receipt(record["key"], "create", "ok", remote, record["token"], datetime.now(UTC))
            for remote, record in self.records.items()
            if record["key"] in wanted
        }

    def holdings(self, start, end, lines):  # type: ignore[no-untyped-def]
        from connectors.delivery import billable_minutes

        Holding = self._types[0]
        self.holding_reads += 1
        for remote, record in list(self.records.items()):
            line = record["line"]
            if start <= line.work_date <= end:
                yield Holding(record["key"], remote, line.work_date, billable_minutes(line.seconds), record["token"])

    def stats(self) -> dict[str, int]:
        return {"calls": len(self.pushes)}

    def close(self) -> None:
        return None

    def lines(self) -> list[object]:
        return [record["line"] for record in self.records.values()]


# The people ListSource entries are logged by (one with an email the mapping document matches).
PEOPLE = {"u1": Person("u1", "Zoë Müller", "zoe@example.com"), "u2": Person("u2", "Liam O'Connor", "liam@example.com")}


class ListSource:
    """A PM tool whose entries the test edits between runs."""

    name: ClassVar[str] = "asana"

    def __init__(self) -> None:
        self.entries: dict[str, TimeEntry] = {}

    def put(self, ident: str, minutes: int, day: date, *, person: str = "u1", project: str = "Website", **more: Any):
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
