"""A local emulator of Clockify's API v1 and Reports API read side hourbridge uses, serving a seeded data set."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connectors.sandbox._http import (
    Refused,
    Request,
    Response,
    json_object,
    json_response,
    refuse_unknown,
    with_headers,
)
from connectors.sandbox._middleware import Clock, Guard, RateLimit, RateLimiter
from connectors.sandbox._server import HostedSandbox, SandboxServer
from connectors.sandbox.dataset import Dataset

WORKSPACE_ID = "64a0c0ffee0000000000a001"
ADMIN_KEY = "clockify-sandbox-admin-key"  # fake credentials the local emulator accepts
MEMBER_KEY = "clockify-sandbox-member-key"
# Clockify: 50 requests a second per key (429 beyond); the Free plan's reports: 30 an hour and at most
# 31 days per report (unconfirmed: the stricter reading); pageSize up to 1,000.
REQUESTS_PER_SECOND = 50
FREE_REPORTS_PER_HOUR = 30
FREE_REPORT_DAYS = 31
MAX_PAGE_SIZE = 1000
SORT_COLUMNS = frozenset({"ID", "DESCRIPTION", "USER", "DURATION", "DATE", "ITEM_DATE", "ITEM_DURATION"})

USER = "user"
WORKSPACES = "workspaces"
USER_TIME_ENTRIES = "user.time_entries"
DETAILED_REPORT = "reports.detailed"
ROUTES = (USER, WORKSPACES, USER_TIME_ENTRIES, DETAILED_REPORT)

_TIMER_ID = "64ffffffffffffffffff0001"

_REPORT_KEYS = frozenset(
    {
        "dateRangeStart",
        "dateRangeEnd",
        "detailedFilter",
        "exportType",
        "users",
        "projects",
        "clients",
        "tags",
        "tasks",
        "billable",
        "description",
        "rounding",
        "amountShown",
        "timeZone",
        "sortOrder",
    }
)

Json = dict[str, Any]


def clockify_error(status: int, message: str) -> Response:
    """Clockify answers errors as ``{"message": ..., "code": ...}``."""
    return json_response({"message": message, "code": {401: 1000, 403: 1003, 404: 1004}.get(status, 501)}, status)


def _hex(prefix: int, index: int) -> str:
    return f"{prefix:04x}{index:020x}"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{secs}S" if secs else "")
    return text if text != "PT" else "PT0S"


@dataclass(slots=True)
class _Entry:
    id: str
    user: str
    project: str | None
    task: str | None
    tags: tuple[str, ...]
    billable: bool
    description: str
    start: datetime
    end: datetime | None

    @property
    def seconds(self) -> int | None:
        return None if self.end is None else int((self.end - self.start).total_seconds())


class ClockifySandbox(HostedSandbox):
    """Clockify on 127.0.0.1: one workspace whose members are the data set's contractors.

    ``ADMIN_KEY`` is the first contractor's (workspace owner): the detailed report answers it.
    ``MEMBER_KEY`` is the second's (a regular member): reports refuse it (403, the stricter reading)
    and only its own ``/user/{id}/time-entries`` are listed. Keys go in ``X-Api-Key``. More than 50
    requests a second answers 429; on the ``free`` plan a report spans at most 31 days and 30 reports
    an hour are answered, then 429 with ``Retry-After`` until the hour frees up. Work dates
    (``entry_ids``) are start dates in ``timezone``.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        token: str = ADMIN_KEY,
        member_token: str = MEMBER_KEY,
        plan: str = "free",
        clock: Clock | None = None,
        timezone: str = "UTC",
    ) -> None:
        self.dataset = dataset
        self._token = token
        self._member_token = member_token
        self._plan = plan
        self._clock: Clock = clock or time.monotonic
        self._zone = ZoneInfo(timezone)
        self._lock = threading.Lock()
        self._reports: dict[str, deque[float]] = {}
        self.report_refusals = 0
        limiter = RateLimiter(REQUESTS_PER_SECOND, clock=self._clock, window=1.0)
        self._server = SandboxServer(
            error_factory=clockify_error,
            inner=(
                lambda app: Guard(app, self._authenticate),
                lambda app: RateLimit(app, limiter, clockify_error, lambda r: r.headers.get("X-Api-Key", "")),
            ),
        )
        self._build()
        for method, rule, name, handler in (
            ("GET", "/api/v1/user", USER, self._user),
            ("GET", "/api/v1/workspaces", WORKSPACES, self._workspaces),
            ("GET", "/api/v1/workspaces/<wid>/user/<uid>/time-entries", USER_TIME_ENTRIES, self._user_entries),
            ("POST", "/reports/v1/workspaces/<wid>/reports/detailed", DETAILED_REPORT, self._detailed),
        ):
            self._server.route(method, rule, self._answer(handler), name=name)

    # -- data ------------------------------------------------------------------------------------

    def _build(self) -> None:
        ds = self.dataset
        self._users = {
            _hex(0x64B0, c.index): {"id": _hex(0x64B0, c.index), "email": c.email, "name": c.name}
            for c in ds.contractors
        }
        self._user_of = {c.id: _hex(0x64B0, c.index) for c in ds.contractors}
        self._admin = _hex(0x64B0, 0)
        self._keys = {self._token: self._admin, self._member_token: _hex(0x64B0, 1)}
        self._clients = {_hex(0x64C0, c.index): c.name for c in ds.clients}
        self._projects = {
            _hex(0x64D0, p.index): (p.name, _hex(0x64C0, ds.client(p.client_id).index)) for p in ds.projects
        }
        self._tasks = {_hex(0x64E0, t.index): t.name for t in ds.tasks}
        names = sorted({tag for t in ds.tasks for tag in t.tags})
        self._tags = {_hex(0x64F0, i): name for i, name in enumerate(names)}
        tag_ids = {name: tag_id for tag_id, name in self._tags.items()}
        self._entries: dict[str, _Entry] = {}
        for e in ds.entries:
            task = ds.task(e.task_id)
            entry_id = _hex(0x6500, e.index)
            self._entries[entry_id] = _Entry(
                entry_id,
                self._user_of[e.person_id],
                _hex(0x64D0, ds.project(e.project_id).index),
                _hex(0x64E0, task.index),
                tuple(tag_ids[t] for t in task.tags),
                e.billable,
                e.description or "",
                e.started_at,
                e.ended_at,
            )
        start = datetime.combine(ds.anchor, datetime.min.time(), tzinfo=UTC) + timedelta(hours=10)
        self._entries[_TIMER_ID] = _Entry(_TIMER_ID, self._admin, None, None, (), False, "running", start, None)

    # -- controls --------------------------------------------------------------------------------

    @property
    def member_token(self) -> str:
        return self._member_token

    @property
    def workspace_id(self) -> str:
        return WORKSPACE_ID

    @property
    def api_url(self) -> str:
        return f"{self._server.root_url}/api"

    @property
    def reports_url(self) -> str:
        return f"{self._server.root_url}/reports"

    def user_id(self, contractor_id: str) -> str:
        return self._user_of[contractor_id]

    def entry_ids(self, start: date, end: date, *, user: str | None = None) -> set[str]:
        """Stopped entries whose start falls on ``start..end`` in the emulator's zone."""
        with self._lock:
            return {
                e.id
                for e in self._entries.values()
                if e.end is not None
                and start <= e.start.astimezone(self._zone).date() <= end
                and (user is None or e.user == user)
            }

    def seconds_of(self, ids: set[str]) -> int:
        with self._lock:
            return sum(self._entries[i].seconds or 0 for i in ids)

    def delete_entry(self, entry_id: str) -> None:
        with self._lock:
            del self._entries[entry_id]

    def call_count(self, route: str | None = None) -> int:
        return self._server.call_count(route)

    # -- plumbing --------------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> Response | None:
        if request.headers.get("X-Api-Key") not in self._keys:
            return clockify_error(401, "Full authentication is required to access this resource")
        return None

    def _answer(self, handler: Callable[[Request, str], Response]) -> Callable[[Request], Response]:
        def run(request: Request) -> Response:
            me = self._keys[request.headers["X-Api-Key"]]
            try:
                if "wid" in request.params and request.params["wid"] != WORKSPACE_ID:
                    raise Refused(403, "Access denied to this workspace")
                return handler(request, me)
            except Refused as exc:
                return clockify_error(exc.status, exc.message)

        return run

    def _user(self, request: Request, me: str) -> Response:
        return json_response({**self._users[me], "activeWorkspace": WORKSPACE_ID, "defaultWorkspace": WORKSPACE_ID})

    def _workspaces(self, request: Request, me: str) -> Response:
        return json_response([{"id": WORKSPACE_ID, "name": "Example Consulting"}])

    @staticmethod
    def _instant(value: object, name: str) -> datetime:
        if not isinstance(value, str):
            raise Refused(400, f"{name} is required")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Refused(400, f"{name} must be an ISO 8601 date and time") from None
        if parsed.tzinfo is None:
            raise Refused(400, f"{name} must carry a zone")
        return parsed

    def _user_entries(self, request: Request, me: str) -> Response:
        allowed = {"start", "end", "page", "page-size", "hydrated", "in-progress", "description", "project", "task"}
        refuse_unknown(request.args, allowed, "parameter")
        user = request.params["uid"]
        if user != me and me != self._admin:
            raise Refused(403, "Only workspace admins may read other users' time entries")
        start = self._instant(request.arg("start"), "start") if request.arg("start") else None
        end = self._instant(request.arg("end"), "end") if request.arg("end") else None
        page, size = self._paging(request.arg("page") or "1", request.arg("page-size") or "50")
        hydrated = request.arg("hydrated") == "true"
        with self._lock:
            rows = sorted(
                (
                    e
                    for e in self._entries.values()
                    if e.user == user and (start is None or e.start >= start) and (end is None or e.start <= end)
                ),
                key=lambda e: (e.start, e.id),
                reverse=True,
            )
            chunk = rows[(page - 1) * size : page * size]
            return json_response([self._user_json(e, hydrated) for e in chunk])

    def _paging(self, page_text: str, size_text: str) -> tuple[int, int]:
        try:
            page, size = int(page_text), int(size_text)
        except ValueError:
            raise Refused(400, "page and page-size must be integers") from None
        if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
            raise Refused(400, f"page must be at least 1 and page-size between 1 and {MAX_PAGE_SIZE}")
        return page, size

    def _user_json(self, e: _Entry, hydrated: bool) -> Json:
        interval = {
            "start": _iso(e.start),
            "end": None if e.end is None else _iso(e.end),
            "duration": None if e.seconds is None else _iso_duration(e.seconds),
        }
        payload: Json = {
            "id": e.id,
            "description": e.description,
            "userId": e.user,
            "billable": e.billable,
            "workspaceId": WORKSPACE_ID,
            "timeInterval": interval,
            "isLocked": False,
        }
        if not hydrated:
            return {**payload, "projectId": e.project, "taskId": e.task, "tagIds": list(e.tags)}
        project = None
        if e.project is not None:
            name, client_id = self._projects[e.project]
            project = {"id": e.project, "name": name, "clientId": client_id, "clientName": self._clients[client_id]}
        return {
            **payload,
            "project": project,
            "task": None if e.task is None else {"id": e.task, "name": self._tasks[e.task]},
            "tags": [{"id": t, "name": self._tags[t]} for t in e.tags],
        }

    def _detailed(self, request: Request, me: str) -> Response:
        if me != self._admin:
            raise Refused(403, "Only workspace owners and admins may run team reports")
        refused = self._spend_report(request.headers["X-Api-Key"])
        if refused is not None:
            return refused
        body = json_object(request, _REPORT_KEYS)
        start = self._instant(body.get("dateRangeStart"), "dateRangeStart")
        end = self._instant(body.get("dateRangeEnd"), "dateRangeEnd")
        if end < start:
            raise Refused(400, "dateRangeEnd is before dateRangeStart")
        if self._plan == "free" and end - start > timedelta(days=FREE_REPORT_DAYS):
            raise Refused(400, f"On the Free plan a report spans at most {FREE_REPORT_DAYS} days")
        if body.get("exportType", "JSON") != "JSON":
            raise Refused(400, "exportType must be JSON here")
        detailed = body.get("detailedFilter")
        if not isinstance(detailed, dict):
            raise Refused(400, "detailedFilter is required")
        if set(detailed) - {"page", "pageSize", "sortColumn", "options"}:
            raise Refused(400, "Unknown detailedFilter field(s)")
        page, size = detailed.get("page", 1), detailed.get("pageSize", 50)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (page, size)):
            raise Refused(400, "page and pageSize must be integers")
        self._paging(str(page), str(size))
        if detailed.get("sortColumn", "DATE") not in SORT_COLUMNS:
            raise Refused(400, "Unknown sortColumn")
        with self._lock:
            rows = sorted((e for e in self._entries.values() if start <= e.start <= end), key=lambda e: e.id)
            chunk = rows[(page - 1) * size : page * size]
            total = sum(e.seconds or 0 for e in rows)
            return json_response(
                {
                    "totals": [{"_id": "", "totalTime": total, "entriesCount": len(rows)}],
                    "timeentries": [self._report_json(e) for e in chunk],
                }
            )

    def _spend_report(self, key: str) -> Response | None:
        if self._plan != "free":
            return None
        with self._lock:
            now = self._clock()
            calls = self._reports.setdefault(key, deque())
            while calls and calls[0] <= now - 3600:
                calls.popleft()
            if len(calls) >= FREE_REPORTS_PER_HOUR:
                self.report_refusals += 1
                wait = int(calls[0] + 3600 - now) + 1
                return with_headers(
                    clockify_error(429, "Report limit reached for the Free plan"), {"Retry-After": str(wait)}
                )
            calls.append(now)
            return None

    def _report_json(self, e: _Entry) -> Json:
        project_name, client_id = self._projects[e.project] if e.project else (None, None)
        return {
            "_id": e.id,
            "description": e.description,
            "userId": e.user,
            "userName": self._users[e.user]["name"],
            "userEmail": self._users[e.user]["email"],
            "billable": e.billable,
            "projectId": e.project,
            "projectName": project_name,
            "clientId": client_id,
            "clientName": self._clients[client_id] if client_id else None,
            "taskId": e.task,
            "taskName": self._tasks[e.task] if e.task else None,
            "tags": [{"_id": t, "name": self._tags[t]} for t in e.tags],
            "timeInterval": {
                "start": _iso(e.start),
                "end": None if e.end is None else _iso(e.end),
                "duration": e.seconds,
            },
        }


def serve_clockify(dataset: Dataset, **options: Any) -> ClockifySandbox:
    """Start a Clockify emulator on 127.0.0.1 (stop it with ``.stop()``); what ``hourbridge sandbox`` wires in."""
    return ClockifySandbox(dataset, **options).start()
