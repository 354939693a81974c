"""A local emulator of Toggl Track's API v9 and Reports API v3 read side hourbridge uses, serving a seeded data set."""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections import deque
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
from connectors.sandbox._middleware import Clock, Guard
from connectors.sandbox._server import HostedSandbox, SandboxServer
from connectors.sandbox.dataset import Dataset

WORKSPACE_ID = 7_000_001
ADMIN_TOKEN = "toggl_sandbox_admin_token"  # noqa: S105  (fake credentials the local emulator accepts)
MEMBER_TOKEN = "toggl_sandbox_member_token"  # noqa: S105
# Toggl: hourly quotas per user and organization by plan, 30 an hour for /me calls on every plan, 402
# once spent (https://support.toggl.com/en/articles/11484112-api-webhook-limits).
PLAN_QUOTAS = {"free": 30, "starter": 240, "premium": 600}
ME_QUOTA = 30
# Toggl: a leaky bucket of "approximately one request per second", 429 beyond it (same page). The
# bucket's depth is unconfirmed: three requests here.
BUCKET_DEPTH = 3
# The documented detailed-report page is 50 rows; whether v3 allows more is unconfirmed, so no more here.
MAX_PAGE_SIZE = 50
ME_MAX_ENTRIES = 1000

ME = "me"
ME_TIME_ENTRIES = "me.time_entries"
WORKSPACE = "workspace"
PROJECTS = "workspace.projects"
CLIENTS = "workspace.clients"
TAGS = "workspace.tags"
USERS = "workspace.users"
REPORT_SEARCH = "reports.search"
ROUTES = (ME, ME_TIME_ENTRIES, WORKSPACE, PROJECTS, CLIENTS, TAGS, USERS, REPORT_SEARCH)

_USER_BASE = 9_100_001
_CLIENT_BASE = 61_000_001
_PROJECT_BASE = 200_000_001
_TASK_BASE = 88_000_001
_TAG_BASE = 15_000_001
_ENTRY_BASE = 3_900_000_001
_TIMER_ID = 3_999_999_999
_REPORT_KEYS = frozenset(
    {
        "start_date",
        "end_date",
        "page_size",
        "first_id",
        "first_row_number",
        "first_timestamp",
        "enrich_response",
        "user_ids",
        "project_ids",
        "client_ids",
        "tag_ids",
        "task_ids",
        "billable",
        "description",
        "grouped",
        "hide_amounts",
        "order_by",
        "order_dir",
    }
)

Json = dict[str, Any]


def toggl_error(status: int, message: str) -> Response:
    """Toggl answers errors as a bare JSON string."""
    return json_response(message, status)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@dataclass(slots=True)
class _Entry:
    id: int
    user: int
    project: int | None
    task: int | None
    tags: tuple[int, ...]
    billable: bool
    description: str
    start: datetime
    stop: datetime | None
    at: datetime
    deleted_at: datetime | None = None

    @property
    def seconds(self) -> int | None:
        return None if self.stop is None else int((self.stop - self.start).total_seconds())


class _Quotas:
    """Sliding-hour quotas per (token, kind) and the one-per-second leaky bucket per token."""

    def __init__(self, limits: dict[str, int | None], clock: Clock) -> None:
        self.limits = limits
        self._clock = clock
        self._calls: dict[tuple[str, str], deque[float]] = {}
        self._bucket: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self.refused_402 = 0
        self.refused_429 = 0

    def take(self, token: str, kind: str) -> Response | dict[str, str]:
        with self._lock:
            now = self._clock()
            level, last = self._bucket.get(token, (0.0, now))
            level = max(0.0, level - (now - last))
            if level + 1 > BUCKET_DEPTH:
                self.refused_429 += 1
                self._bucket[token] = (level, now)
                return with_headers(toggl_error(429, "Too Many Requests"), {"Retry-After": "1"})
            self._bucket[token] = (level + 1, now)
            limit = self.limits.get(kind)
            calls = self._calls.setdefault((token, kind), deque())
            while calls and calls[0] <= now - 3600:
                calls.popleft()
            resets_in = int(calls[0] + 3600 - now) + 1 if calls else 3600
            if limit is not None and len(calls) >= limit:
                self.refused_402 += 1
                headers = {"X-Toggl-Quota-Remaining": "0", "X-Toggl-Quota-Resets-In": str(resets_in)}
                return with_headers(toggl_error(402, "API quota exceeded"), headers)
            calls.append(now)
            if limit is None:
                return {}
            return {"X-Toggl-Quota-Remaining": str(limit - len(calls)), "X-Toggl-Quota-Resets-In": str(resets_in)}


class TogglSandbox(HostedSandbox):
    """Toggl Track on 127.0.0.1: one workspace whose members are the data set's contractors.

    ``ADMIN_TOKEN`` is the first contractor's, a workspace admin (the Reports API answers them);
    ``MEMBER_TOKEN`` the second's, a member: the Reports API refuses them (403, the stricter reading
    of "private reports only for the owner or an admin") and ``/api/v9/me/time_entries`` lists their
    own entries. Auth is HTTP Basic ``<token>:api_token``. Quotas: ``plan`` sets the hourly quota of
    workspace calls, ``/me`` calls have 30 an hour; spent quotas answer 402 with
    ``X-Toggl-Quota-Remaining: 0`` and ``X-Toggl-Quota-Resets-In``; more than about one request a
    second answers 429 with ``Retry-After``. Work dates (``entry_ids``) are start dates in ``timezone``.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        token: str = ADMIN_TOKEN,
        member_token: str = MEMBER_TOKEN,
        plan: str | None = "premium",
        clock: Clock | None = None,
        timezone: str = "UTC",
        max_page_size: int = MAX_PAGE_SIZE,
    ) -> None:
        self.dataset = dataset
        self._token = token
        self._member_token = member_token
        self._tokens = {token: _USER_BASE, member_token: _USER_BASE + 1}
        self._clock: Clock = clock or time.monotonic
        self._zone = ZoneInfo(timezone)
        self._max_page_size = max_page_size
        self._quotas = _Quotas({"workspace": PLAN_QUOTAS.get(plan or ""), "me": ME_QUOTA}, self._clock)
        self._lock = threading.Lock()
        self._server = SandboxServer(error_factory=toggl_error, inner=(lambda app: Guard(app, self._gate),))
        self._build()
        for method, rule, name, handler in (
            ("GET", "/api/v9/me", ME, self._me),
            ("GET", "/api/v9/me/time_entries", ME_TIME_ENTRIES, self._my_entries),
            ("GET", "/api/v9/workspaces/<int:wid>", WORKSPACE, self._workspace),
            ("GET", "/api/v9/workspaces/<int:wid>/projects", PROJECTS, self._projects),
            ("GET", "/api/v9/workspaces/<int:wid>/clients", CLIENTS, self._clients),
            ("GET", "/api/v9/workspaces/<int:wid>/tags", TAGS, self._tags),
            ("GET", "/api/v9/workspaces/<int:wid>/users", USERS, self._members),
            ("POST", "/reports/api/v3/workspace/<int:wid>/search/time_entries", REPORT_SEARCH, self._search),
        ):
            self._server.route(method, rule, self._answer(handler), name=name)

    # -- data ------------------------------------------------------------------------------------

    def _build(self) -> None:
        ds = self.dataset
        self._users = {
            _USER_BASE + c.index: {"id": _USER_BASE + c.index, "email": c.email, "fullname": c.name}
            for c in ds.contractors
        }
        self._user_of = {c.id: _USER_BASE + c.index for c in ds.contractors}
        self._clients_json = [
            {"id": _CLIENT_BASE + c.index, "wid": WORKSPACE_ID, "name": c.name, "archived": False} for c in ds.clients
        ]
        self._projects_json = [
            {
                "id": _PROJECT_BASE + p.index,
                "workspace_id": WORKSPACE_ID,
                "client_id": _CLIENT_BASE + ds.client(p.client_id).index,
                "name": p.name,
                "active": True,
                "billable": p.billable,
            }
            for p in ds.projects
        ]
        names = sorted({tag for t in ds.tasks for tag in t.tags})
        self._tag_ids = {name: _TAG_BASE + i for i, name in enumerate(names)}
        self._tags_json = [
            {"id": tag_id, "workspace_id": WORKSPACE_ID, "name": n} for n, tag_id in self._tag_ids.items()
        ]
        self._entries: dict[int, _Entry] = {}
        for e in ds.entries:
            task = ds.task(e.task_id)
            self._entries[_ENTRY_BASE + e.index] = _Entry(
                id=_ENTRY_BASE + e.index,
                user=self._user_of[e.person_id],
                project=_PROJECT_BASE + ds.project(e.project_id).index,
                task=_TASK_BASE + task.index,
                tags=tuple(self._tag_ids[t] for t in task.tags),
                billable=e.billable,
                description=e.description or "",
                start=e.started_at,
                stop=e.ended_at,
                at=e.recorded_at,
            )
        # A timer still running for the admin: no stop and a negative duration until it stops.
        start = datetime.combine(ds.anchor, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
        self._entries[_TIMER_ID] = _Entry(_TIMER_ID, _USER_BASE, None, None, (), False, "running", start, None, start)

    # -- controls --------------------------------------------------------------------------------

    @property
    def member_token(self) -> str:
        return self._member_token

    @property
    def workspace_id(self) -> str:
        return str(WORKSPACE_ID)

    @property
    def quota_refusals(self) -> int:
        return self._quotas.refused_402

    @property
    def throttled(self) -> int:
        return self._quotas.refused_429

    def user_id(self, contractor_id: str) -> int:
        return self._user_of[contractor_id]

    def entry_ids(self, start: date, end: date, *, user: int | None = None) -> set[int]:
        """Stopped, live entries whose start falls on ``start..end`` in the emulator's zone."""
        with self._lock:
            return {
                e.id
                for e in self._entries.values()
                if e.stop is not None
                and e.deleted_at is None
                and start <= e.start.astimezone(self._zone).date() <= end
                and (user is None or e.user == user)
            }

    def seconds_of(self, ids: set[int]) -> int:
        with self._lock:
            return sum(self._entries[i].seconds or 0 for i in ids)

    def delete_entry(self, entry_id: int) -> None:
        """Delete an entry: reports stop listing it; ``since`` lists it with ``server_deleted_at``."""
        with self._lock:
            entry = self._entries[entry_id]
            entry.deleted_at = entry.at = datetime.now(UTC)

    def call_count(self, route: str | None = None) -> int:
        return self._server.call_count(route)

    # -- plumbing --------------------------------------------------------------------------------

    def _user_of_request(self, request: Request) -> int | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        # Toggl: the token is the user name and the literal word "api_token" the password.
        return self._tokens.get(user) if password == "api_token" else None  # noqa: S105

    def _gate(self, request: Request) -> Response | None:
        if self._user_of_request(request) is None:
            return toggl_error(403, "Incorrect username and/or password")
        token = request.headers["Authorization"]
        kind = "me" if request.path.startswith("/api/v9/me") else "workspace"
        taken = self._quotas.take(token, kind)
        if isinstance(taken, Response):
            return taken
        request.environ["toggl.quota"] = taken
        return None

    def _answer(self, handler: Any) -> Any:
        def run(request: Request) -> Response:
            me = self._user_of_request(request)
            assert me is not None  # the gate refused everyone else
            headers = request.environ.get("toggl.quota", {})
            try:
                if "wid" in request.params and int(request.params["wid"]) != WORKSPACE_ID:
                    raise Refused(403, "Forbidden")
                payload, extra = handler(request, me)
            except Refused as exc:
                return with_headers(toggl_error(exc.status, exc.message), headers)
            return json_response(payload, headers={**headers, **extra})

        return run

    def _admin(self, me: int) -> bool:
        return me == _USER_BASE

    def _me(self, request: Request, me: int) -> tuple[Any, dict[str, str]]:
        return {**self._users[me], "default_workspace_id": WORKSPACE_ID, "timezone": "UTC"}, {}

    def _workspace(self, request: Request, me: int) -> tuple[Any, dict[str, str]]:
        return {"id": WORKSPACE_ID, "name": "Example Consulting", "admin": self._admin(me), "premium": True}, {}

    def _projects(self, request: Request, me: int) -> tuple[Any, dict[str, str]]:
        return self._projects_json, {}

    def _clients(self, request: Request, me: int) -> tuple[Any, dict[str, str]]:
        return self._clients_json, {}

    def _tags(self, request: Request, me: int) -> tuple[Any, dict[str, str]]:
        return self._tags_json, {}

    def _members(self, request: Request, me: int) -> tuple[Any, dict[str, str]]:
        if not self._admin(me):
            raise Refused(403, "Only workspace admins may list its users")
        return [dict(user) for _, user in sorted(self._users.items())], {}

    def _my_entries(self, request: Request, me: int) -> tuple[Any, dict[str, str]]:
        allowed = {"since", "before", "start_date", "end_date", "meta", "include_sharing"}
        refuse_unknown(request.args, allowed, "parameter")
        since, start, end = request.arg("since"), request.arg("start_date"), request.arg("end_date")
        if (start is None) != (end is None):
            raise Refused(400, "start_date and end_date must be given together")
        if since is not None and start is not None:
            raise Refused(400, "since cannot be combined with start_date and end_date")
        with self._lock:
            mine = [e for e in self._entries.values() if e.user == me]
            if since is not None:
                try:
                    cutoff = datetime.fromtimestamp(int(since), UTC)
                except ValueError:
                    raise Refused(400, "since must be a UNIX timestamp") from None
                rows = [e for e in mine if e.at >= cutoff]  # deleted ones too, with server_deleted_at
            else:
                lo, hi = (
                    (self._bound(start, "start_date"), self._bound(end, "end_date")) if start and end else (None, None)
                )
                if lo is not None and hi is not None and hi <= lo:
                    raise Refused(400, "end_date must be after start_date")
                rows = [
                    e
                    for e in mine
                    if e.deleted_at is None and (lo is None or lo <= e.start) and (hi is None or e.start < hi)
                ]
            rows.sort(key=lambda e: (e.start, e.id), reverse=True)
            return [self._own_json(e) for e in rows[:ME_MAX_ENTRIES]], {}

    def _bound(self, value: str, name: str) -> datetime:
        try:
            if len(value) == 10:
                return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise Refused(400, f"{name} must be YYYY-MM-DD or RFC 3339") from None
        if parsed.tzinfo is None:
            raise Refused(400, f"{name} must carry a zone")
        return parsed

    def _own_json(self, e: _Entry) -> Json:
        tag_names = {v: k for k, v in self._tag_ids.items()}
        return {
            "id": e.id,
            "workspace_id": WORKSPACE_ID,
            "wid": WORKSPACE_ID,
            "user_id": e.user,
            "uid": e.user,
            "project_id": e.project,
            "pid": e.project,
            "task_id": e.task,
            "tid": e.task,
            "billable": e.billable,
            "description": e.description,
            "tags": [tag_names[t] for t in e.tags],
            "tag_ids": list(e.tags),
            "start": _iso(e.start),
            "stop": None if e.stop is None else _iso(e.stop),
            "duration": e.seconds if e.seconds is not None else -int(e.start.timestamp()),
            "duronly": True,
            "at": _iso(e.at),
            "server_deleted_at": None if e.deleted_at is None else _iso(e.deleted_at),
        }

    def _search(self, request: Request, me: int) -> tuple[Any, dict[str, str]]:
        if not self._admin(me):
            raise Refused(403, "Only workspace admins may run this report")
        body = json_object(request, _REPORT_KEYS)
        for name in ("start_date", "end_date"):
            value = body.get(name)
            if not isinstance(value, str) or len(value) != 10:
                raise Refused(400, f"{name} is required as YYYY-MM-DD")
        try:
            start, end = date.fromisoformat(body["start_date"]), date.fromisoformat(body["end_date"])
        except ValueError:
            raise Refused(400, "start_date and end_date must be YYYY-MM-DD") from None
        if end <= start:
            raise Refused(400, "end_date should be greater than start_date")
        size = body.get("page_size", MAX_PAGE_SIZE)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= self._max_page_size:
            raise Refused(400, f"page_size must be between 1 and {self._max_page_size}")
        with self._lock:
            rows = sorted(
                (
                    e
                    for e in self._entries.values()
                    if e.deleted_at is None and start <= e.start.astimezone(UTC).date() <= end
                ),
                key=lambda e: (e.start, e.id),
            )
            cursor = [body.get(k) for k in ("first_id", "first_row_number", "first_timestamp")]
            offset = 0
            if any(v is not None for v in cursor):
                first_id, row_number, stamp = cursor
                if not isinstance(row_number, int) or not all(isinstance(v, int) for v in cursor):
                    raise Refused(400, "first_id, first_row_number and first_timestamp go together, as integers")
                offset = row_number - 1
                if (
                    not 0 <= offset < len(rows)
                    or rows[offset].id != first_id
                    or int(rows[offset].start.timestamp()) != stamp
                ):
                    raise Refused(400, "The page cursor does not match this report")
            page = rows[offset : offset + size]
            extra: dict[str, str] = {}
            if offset + size < len(rows):
                following = rows[offset + size]
                extra = {
                    "X-Next-ID": str(following.id),
                    "X-Next-Row-Number": str(offset + size + 1),
                    "X-Next-Timestamp": str(int(following.start.timestamp())),
                }
            return [self._row_json(e, offset + i + 1) for i, e in enumerate(page)], extra

    def _row_json(self, e: _Entry, row_number: int) -> Json:
        return {
            "user_id": e.user,
            "username": self._users[e.user]["fullname"],
            "project_id": e.project,
            "task_id": e.task,
            "billable": e.billable,
            "description": e.description,
            "tag_ids": list(e.tags),
            "billable_amount_in_cents": None,
            "hourly_rate_in_cents": None,
            "currency": "EUR",
            "row_number": row_number,
            "time_entries": [
                {
                    "id": e.id,
                    "seconds": e.seconds if e.seconds is not None else -int(e.start.timestamp()),
                    "start": _iso(e.start),
                    "stop": None if e.stop is None else _iso(e.stop),
                    "at": _iso(e.at),
                }
            ],
        }


def serve_toggl(dataset: Dataset, **options: Any) -> TogglSandbox:
    """Start a Toggl Track emulator on 127.0.0.1 (stop it with ``.stop()``); what ``hourbridge sandbox`` wires in."""
    return TogglSandbox(dataset, **options).start()
