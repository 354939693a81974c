"""Domain values that cross every seam: time entries, scopes, windows, coverage (frozen, UTC, int seconds)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal


def _require_utc(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() != timedelta(0)):
        raise ValueError(f"{name} must be a timezone-aware UTC datetime, got {value!r}")


@dataclass(frozen=True, slots=True)
class Person:
    """Who logged the time, as the PM tool knows them."""

    id: str
    name: str = ""
    email: str | None = None


@dataclass(frozen=True, slots=True)
class TaskRef:
    """The task the time was logged against."""

    id: str
    name: str = ""
    custom_id: str | None = None


@dataclass(frozen=True, slots=True)
class Container:
    """One level of where the task lives: a workspace, project, space, folder, list, board or group."""

    kind: str
    id: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Scope:
    """A unit of pulling: one workspace (Asana), team (ClickUp) or account (monday) a credential sees."""

    source: str
    account: str
    name: str = ""
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Window:
    """An inclusive range of work dates, as the PM tool assigns them."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"window end {self.end} is before its start {self.start}")

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day <= self.end

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def split(self, max_days: int) -> list[Window]:
        """Consecutive sub-windows of at most ``max_days`` days, in date order."""
        if max_days < 1:
            raise ValueError("max_days must be at least 1")
        parts: list[Window] = []
        cursor = self.start
        while cursor <= self.end:
            end = min(self.end, cursor + timedelta(days=max_days - 1))
            parts.append(Window(cursor, end))
            cursor = end + timedelta(days=1)
        return parts


CoverageKind = Literal["window", "snapshot"]


@dataclass(frozen=True, slots=True)
class Slice:
    """One named piece of a snapshot: every entry of ``person`` (a ``Person.id``) dated ``start..end``."""

    person: str
    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"slice end {self.end} is before its start {self.start}")


@dataclass(frozen=True, slots=True)
class Coverage:
    """What one fetch of a scope and window is complete for: the ledger tombstones only inside it.

    ``window``: the fetch returned every entry of the scope in the window (the PM tools). ``snapshot``:
    only the named (person, dates) slices are complete (a file upload, a per-user API), so an entry
    of another person or of a date outside every slice was simply not looked at and must stay.
    """

    kind: CoverageKind
    slices: tuple[Slice, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "window" and self.slices:
            raise ValueError("a window coverage names no slices")

    @classmethod
    def complete_window(cls) -> Coverage:
        return cls("window")

    @classmethod
    def snapshot(cls, slices: Iterable[Slice]) -> Coverage:
        return cls("snapshot", tuple(slices))

    def covers(self, person: str, day: date) -> bool:
        """True when a missing entry of ``person`` on ``day`` (inside the fetched window) means it is gone."""
        if self.kind == "window":
            return True
        return any(s.person == person and s.start <= day <= s.end for s in self.slices)


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """What a mapping document may name: every source and the container kinds its rules match on.

    Built from the connector registry by ``sync``; ``mappings`` gets it as a value (it imports
    nothing but this module). ``kinds`` pairs each source with its matchable container kinds,
    outermost first (ClickUp: space, folder, list).
    """

    kinds: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(source for source, _ in self.kinds)

    @property
    def container_keys(self) -> tuple[str, ...]:
        """Every matchable container kind once, in registration order."""
        seen: dict[str, None] = {}
        for _, kinds in self.kinds:
            seen.update(dict.fromkeys(kinds))
        return tuple(seen)

    def sources_of(self, kind: str) -> frozenset[str]:
        """The sources whose entries can carry a container of ``kind``."""
        return frozenset(source for source, kinds in self.kinds if kind in kinds)

    def innermost_first(self) -> tuple[str, ...]:
        """Container keys from the innermost level of every source outwards: the most selective first."""
        ordered: dict[str, None] = {}
        depth = max((len(kinds) for _, kinds in self.kinds), default=0)
        for level in range(depth):
            for _, kinds in self.kinds:
                if level < len(kinds):
                    ordered.setdefault(kinds[len(kinds) - 1 - level])
        return tuple(ordered)


@dataclass(frozen=True, slots=True)
class TimeEntry:
    """One normalized time record from a PM tool.

    ``work_date`` is the day the tool files the time under (Asana's ``entered_on``; for tools that
    record instants, the start's date in the workspace's time zone). ``started_at``/``ended_at``
    are UTC when the tool records instants; Asana records only a date, so they are ``None`` there.
    """

    source: str
    account: str
    external_id: str
    work_date: date
    duration_seconds: int
    person: Person
    task: TaskRef | None = None
    containers: tuple[Container, ...] = ()
    tags: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    custom_fields: tuple[tuple[str, str], ...] = ()
    billable: bool | None = None
    approval_status: str | None = None
    description: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    recorded_at: datetime | None = None
    content_hash: str = field(default="", compare=False)
    # The canonical JSON the hash was taken over; the ledger stores it as is instead of encoding
    # the payload again. Empty when the entry was rebuilt with a known hash (see ``payload_json``).
    canonical_json: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.duration_seconds, int) or isinstance(self.duration_seconds, bool):
            raise TypeError("duration_seconds must be an int")
        if self.duration_seconds < 0:
            raise ValueError(f"duration_seconds must not be negative ({self.external_id})")
        for name in ("started_at", "ended_at", "recorded_at"):
            _require_utc(name, getattr(self, name))
        if not self.content_hash:
            canonical = canonical_json(self.to_payload())
            object.__setattr__(self, "canonical_json", canonical)
            object.__setattr__(self, "content_hash", hashlib.sha256(canonical.encode("utf-8")).hexdigest())

    def payload_json(self) -> str:
        """The canonical JSON of ``to_payload()`` (sorted keys, compact), computed once."""
        return self.canonical_json or canonical_json(self.to_payload())

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.account, self.external_id)

    def container(self, kind: str) -> Container | None:
        for item in self.containers:
            if item.kind == kind:
                return item
        return None

    @property
    def custom_field_map(self) -> dict[str, str]:
        return dict(self.custom_fields)

    def to_payload(self) -> dict[str, Any]:
        """A JSON-ready dict with a canonical layout; the content hash is taken over it."""
        return {
            "source": self.source,
            "account": self.account,
            "external_id": self.external_id,
            "work_date": self.work_date.isoformat(),
            "duration_seconds": self.duration_seconds,
            "person": {"id": self.person.id, "name": self.person.name, "email": self.person.email},
            "task": None
            if self.task is None
            else {"id": self.task.id, "name": self.task.name, "custom_id": self.task.custom_id},
            "containers": [{"kind": c.kind, "id": c.id, "name": c.name} for c in self.containers],
            "tags": list(self.tags),
            "categories": list(self.categories),
            "custom_fields": [[k, v] for k, v in self.custom_fields],
            "billable": self.billable,
            "approval_status": self.approval_status,
            "description": self.description,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "recorded_at": _iso(self.recorded_at),
        }

    @classmethod
    def from_payload(cls, data: dict[str, Any], *, content_hash: str = "") -> TimeEntry:
        """Rebuild an entry; pass the stored ``content_hash`` to skip hashing it again."""
        task = data.get("task")
        return cls(
            source=data["source"],
            account=data["account"],
            external_id=data["external_id"],
            work_date=date.fromisoformat(data["work_date"]),
            duration_seconds=int(data["duration_seconds"]),
            person=Person(**data["person"]),
            task=None if task is None else TaskRef(**task),
            containers=tuple(Container(**c) for c in data.get("containers", ())),
            tags=tuple(data.get("tags", ())),
            categories=tuple(data.get("categories", ())),
            custom_fields=tuple((k, v) for k, v in data.get("custom_fields", ())),
            billable=data.get("billable"),
            approval_status=data.get("approval_status"),
            description=data.get("description"),
            started_at=_parse_iso(data.get("started_at")),
            ended_at=_parse_iso(data.get("ended_at")),
            recorded_at=_parse_iso(data.get("recorded_at")),
            content_hash=content_hash,
        )


def normalize_custom_fields(fields: dict[str, str | None]) -> tuple[tuple[str, str], ...]:
    """Custom fields as a sorted tuple of (name, value), dropping empty values, so hashes are stable."""
    return tuple(sorted((k, v) for k, v in fields.items() if v is not None and v != ""))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_iso(value: str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def canonical_json(payload: dict[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8 as is: the same entry always gives the same text, hence the same hash."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
