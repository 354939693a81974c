"""XeroProjectsSink: delivery ops as Projects API time entries, each write keyed by Idempotency-Key."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from connectors._config import TokenSource
from connectors._ratelimit import RateLimiter
from connectors._retry import Sleep
from connectors.delivery import (
    REF_XERO_PROJECT,
    REF_XERO_TASK,
    REF_XERO_USER,
    Holding,
    Line,
    Now,
    Op,
    OpKind,
    Receipt,
    encode_json,
    failed,
    marked_keys,
    ok,
    unknown,
    utc_now,
)
from connectors.errors import (
    ConfigError,
    CredentialRefused,
    DailyLimitError,
    OutcomeUnknown,
    PayloadError,
    TransientError,
    XeroRefused,
)
from connectors.xero.client import ProjectNames
from connectors.xero.config import XeroConfig
from connectors.xero.render import render_time_entry
from connectors.xero.sink.base import XeroSink, split_remote


class XeroProjectsSink(XeroSink, mode="projects"):
    """Writes time to one Xero organisation as Projects API time entries (one entry per op)."""

    def __init__(
        self,
        config: XeroConfig,
        *,
        token: TokenSource | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        limiter: RateLimiter | None = None,
        now: Now = utc_now,
    ) -> None:
        super().__init__(config, token=token, transport=transport, sleep=sleep, limiter=limiter, now=now)
        self.projects = ProjectNames(self.client)
        self._zone = ZoneInfo(config.organisation_timezone)

    def check(self) -> None:
        self.client.call("projects", "GET", "/ProjectsUsers", params={"page": "1", "pageSize": "1"})

    def push(self, ops: Sequence[Op]) -> Iterator[Receipt]:
        for op in ops:
            yield self._push_entry(op)

    def find(self, idempotency_key: str, line: Line, kind: OpKind = "create") -> Receipt | None:
        """The project's time entries around the work date whose description carries ``[hb:<key>]``."""
        return self._find_entry(idempotency_key, line, kind)

    def find_many(self, keys: Sequence[str], lines: Sequence[Line]) -> dict[str, Receipt]:
        """The time entries carrying any of ``keys``: one listing per project the lines name, over their dates.

        Each listing spans the lines' earliest to latest work date, a day wider on each side as
        ``find`` looks (render logs noon in the organisation's zone, which may be another UTC day).
        """
        wanted = set(keys)
        by_project: dict[str, list[Line]] = {}
        for line in lines:
            by_project.setdefault(self._project_of(line, closed=True), []).append(line)
        found: dict[str, Receipt] = {}
        for project_id, group in sorted(by_project.items()):
            first, last = min(x.work_date for x in group), max(x.work_date for x in group)
            params = {
                "dateAfterUtc": f"{first - timedelta(days=1)}T00:00:00Z",
                "dateBeforeUtc": f"{last + timedelta(days=2)}T00:00:00Z",
            }
            for entry in self.client.pages(f"/Projects/{project_id}/Time", params):
                description = entry.get("description")
                for key in marked_keys(description if isinstance(description, str) else None):
                    if key in wanted and key not in found:
                        remote = f"{project_id}/{entry.get('timeEntryId')}"
                        found[key] = Receipt(key, "create", "ok", remote, None, self._now())
        return found

    def holdings(self, start: date, end: date, lines: Sequence[Line]) -> Iterator[Holding]:
        """Every time entry dated ``start..end`` (inclusive) that carries our marker.

        The time entries of every project the ``lines`` name, listed with dateAfterUtc /
        dateBeforeUtc covering the range in the organisation's zone. ``work_date`` is the entry's
        dateUtc as a date in that zone (render logs noon of the work date there); minutes are its
        ``duration``. The key of a holding is the first marker of the text (render writes exactly
        one, at its head).
        """
        if end < start:
            return
        yield from self._entry_holdings(start, end, lines)

    def _entry_body(self, op: Op, project_id: str) -> dict[str, Any]:
        line = op.line
        code = f"the mapping document's code '{line.code}'"
        task = line.ref(REF_XERO_TASK)
        if task is None:
            raise ConfigError(f"{code} names no xero task; add one so its time can be logged in Xero Projects")
        user = line.ref(REF_XERO_USER) or line.payee
        return render_time_entry(
            line,
            key=op.idempotency_key,
            user_id=self.projects.user_id(user, f"the mapping document's people entry of '{line.person}'"),
            task_id=self.projects.task_id(project_id, task, code),
            zone=self._zone,
            include_description=self.config.include_description,
        )

    def _project_of(self, line: Line, *, closed: bool = False) -> str:
        ref = line.ref(REF_XERO_PROJECT)
        if ref is None:
            raise ConfigError(f"the mapping document's code '{line.code}' names no xero project")
        return self.projects.project_id(ref, f"the mapping document's code '{line.code}'", closed=closed)

    def _push_entry(self, op: Op) -> Receipt:
        try:
            if op.kind == "create":
                project_id = self._project_of(op.line)
                body = self._entry_body(op, project_id)
                payload = self.client.call(
                    "projects",
                    "POST",
                    f"/Projects/{project_id}/Time",
                    body=encode_json(body),
                    key=op.idempotency_key,
                )
                entry_id = payload.get("timeEntryId") if isinstance(payload, Mapping) else None
                if entry_id is None:
                    return unknown(op, "Xero answered without the time entry it created", self._now)
                return ok(op, self._now, remote_id=f"{project_id}/{entry_id}")
            project_id, entry_id = split_remote(str(op.remote_id))
            path = f"/Projects/{project_id}/Time/{entry_id}"
            if op.kind == "delete":
                # The spec lists Idempotency-Key for POST and PUT only; sending it on DELETE is harmless
                # and a repeated delete of a vanished entry (404) is what the op wanted anyway.
                self.client.call("projects", "DELETE", path, key=op.idempotency_key, allow_404=True)
                return ok(op, self._now, remote_id=op.remote_id)
            if self._project_of(op.line) != project_id:
                return failed(
                    op, "the line moved to another Xero project; plan a delete and a create instead", self._now
                )
            body = self._entry_body(op, project_id)
            self.client.call("projects", "PUT", path, body=encode_json(body), key=op.idempotency_key)
            return ok(op, self._now, remote_id=op.remote_id)
        except OutcomeUnknown as exc:
            return unknown(op, exc.message, self._now)
        except CredentialRefused:
            raise
        except (ConfigError, ValueError) as exc:
            return failed(op, str(exc), self._now)
        except (XeroRefused, DailyLimitError) as exc:
            return failed(op, exc.message, self._now)
        except TransientError as exc:
            return failed(op, f"not sent: {exc.message}; send it again later", self._now)

    def _find_entry(self, key: str, line: Line, kind: OpKind) -> Receipt | None:
        project_id = self._project_of(line)
        params = {
            "dateAfterUtc": f"{line.work_date - timedelta(days=1)}T00:00:00Z",
            "dateBeforeUtc": f"{line.work_date + timedelta(days=2)}T00:00:00Z",
        }
        for entry in self.client.pages(f"/Projects/{project_id}/Time", params):
            description = entry.get("description")
            if key in marked_keys(description if isinstance(description, str) else None):
                remote = f"{project_id}/{entry.get('timeEntryId')}"
                return Receipt(key, kind, "ok", remote, None, self._now())
        return None

    def _entry_holdings(self, start: date, end: date, lines: Sequence[Line]) -> Iterator[Holding]:
        # Time logged before a project closed is still held by it, so closed projects count here.
        project_ids = sorted({self._project_of(line, closed=True) for line in lines})
        after = datetime.combine(start, datetime.min.time(), tzinfo=self._zone).astimezone(UTC)
        before = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=self._zone).astimezone(UTC)
        params = {"dateAfterUtc": f"{after:%Y-%m-%dT%H:%M:%SZ}", "dateBeforeUtc": f"{before:%Y-%m-%dT%H:%M:%SZ}"}
        for project_id in project_ids:
            for entry in self.client.pages(f"/Projects/{project_id}/Time", params):
                description = entry.get("description")
                keys = marked_keys(description if isinstance(description, str) else None)
                if not keys:
                    continue
                remote = f"{project_id}/{entry.get('timeEntryId')}"
                work_date = self._local_date(entry.get("dateUtc"), remote)
                if not start <= work_date <= end:
                    continue
                duration = entry.get("duration")
                minutes = duration if isinstance(duration, int) and not isinstance(duration, bool) else 0
                yield Holding(keys[0], remote, work_date, minutes)

    def _local_date(self, value: object, remote: str) -> date:
        """An entry's dateUtc as a calendar date in the organisation's zone."""
        try:
            instant = datetime.fromisoformat(str(value))
        except ValueError:
            raise PayloadError(f"Xero answered time entry {remote} without a readable dateUtc") from None
        if instant.tzinfo is None:  # the field is UTC by definition, whether or not it says so
            instant = instant.replace(tzinfo=UTC)
        return instant.astimezone(self._zone).date()
