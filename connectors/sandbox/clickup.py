"""A local emulator of the ClickUp v2 REST API's time-tracking read side, serving a seeded data set."""

from __future__ import annotations

import hmac
import math
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from connectors.sandbox._http import Request, Response, json_response, with_headers
from connectors.sandbox._middleware import AnnouncedQuota, Clock, Guard
from connectors.sandbox._server import HostedSandbox, SandboxServer
from connectors.sandbox.dataset import Dataset

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

API_BASE_PATH = "/api"
DEFAULT_TOKEN = "pk_sandbox_clickup"  # noqa: S105  (a fake credential the local emulator accepts)
TEAM_ID = "9015000001"
TEAM_NAME = "Example Consulting"
SPACE_ID = 90150000101
SPACE_NAME = "Clients"
TASK_PAGE_SIZE = 100
DEFAULT_RANGE_MS = 30 * 24 * 3600 * 1000
WINDOW_SECONDS = 60.0

# Route names, for ``fail_next`` and ``call_count``.
USER_GET = "user.get"
TEAMS_LIST = "team.list"
TIME_ENTRIES_LIST = "time_entries.list"
TASKS_LIST = "team.tasks"
TASK_GET = "task.get"
ROUTES = (USER_GET, TEAMS_LIST, TIME_ENTRIES_LIST, TASKS_LIST, TASK_GET)

ROLE_OWNER, ROLE_ADMIN, ROLE_MEMBER, ROLE_GUEST = 1, 2, 3, 4

# Ids are numbers for people, folders and lists, short strings for tasks, 19 digits for entries.
_USER_BASE = 81000001
_FOLDER_BASE = 90160000001
_LIST_BASE = 901700000001
_ENTRY_BASE = 4000000000000000001
_TIMER_ID = "4100000000000000001"
_NO_TASK_BASE = 4200000000000000001
_NO_TASK_MINUTES = 20
_NAMESPACE = uuid.UUID("5f0c6f57-2d3b-4d1c-9a59-0c1c1a9e2b10")
_COLORS = ("#7b68ee", "#ff7fab", "#f9d900", "#1bbc9c", "#e50000", "#0231e8", "#ff5722", "#3397dd")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# ClickUp approval statuses; a draft week has no approval object yet.
_APPROVALS = {"SUBMITTED": "pending", "APPROVED": "approved", "REJECTED": "rejected"}

Json = dict[str, Any]


def _ms(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(milliseconds=1)


def clickup_error(status: int, message: str) -> Response:
    """An error in ClickUp's shape: ``{"err": message, "ECODE": code}``."""
    codes = {401: "OAUTH_025", 404: "ITEM_013", 429: "APP_002"}
    if status == 429:
        message = "Rate limit reached"
    return json_response({"err": message, "ECODE": codes.get(status, f"SANDBOX_{status}")}, status)


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class _EntryRecord:
    id: str
    user: int
    task: str | None  # None: time logged without a task (ClickUp answers ``task: null``)
    start_ms: int
    duration_ms: int  # negative while the timer runs, as ClickUp reports it
    billable: bool
    approval: str | None
    approval_id: str | None
    category: str | None
    description: str
    at_ms: int

    @property
    def running(self) -> bool:
        return self.duration_ms < 0

    @property
    def end_ms(self) -> int | None:
        return None if self.running else self.start_ms + self.duration_ms


class _QuotaWindows:
    """ClickUp-style fixed one-minute quota per token, reported in ``X-RateLimit-*`` headers."""

    def __init__(self, limit: int | None, clock: Clock) -> None:
        self.limit = limit
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def set_limit(self, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("rate limit must be at least 1 request per minute, or None")
        with self._lock:
            self.limit = limit
            self._windows.clear()

    def take(self, key: str) -> tuple[bool, dict[str, str]]:
        """Spend one request; whether it is allowed, and the headers describing what is left."""
        with self._lock:
            if self.limit is None:
                return True, {}
            now = self._clock()
            started, used = self._windows.get(key, (now, 0))
            if now >= started + WINDOW_SECONDS:
                started, used = now, 0
            allowed = used < self.limit
            if allowed:
                used += 1
            self._windows[key] = (started, used)
            headers = {
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self.limit - used),
                "X-RateLimit-Reset": str(math.ceil(started + WINDOW_SECONDS)),
            }
            return allowed, headers


class ClickUpSandbox(HostedSandbox):
    """ClickUp on 127.0.0.1: one Workspace with its members, lists, tasks and time entries, with controls.

    The data set maps as: the Workspace holds one space "Clients"; each client is a folder, each
    project a list, each task a task (some with a custom task id, all with a "Project code" drop-down
    whose value is the option's orderindex), each contractor a member, each entry a time entry
    (instants in Unix ms, durations as strings of ms). One running timer of the token owner is
    always there. ``clock`` is the wall clock in Unix seconds (rate-limit resets, the default
    30-day range); ``timezone`` decides the day ``entry_ids``/``total_minutes`` file entries under.
    Rate limiting, when a limit is set, is a fixed one-minute quota per token announced in
    ``X-RateLimit-*`` headers; a 429 carries ``Retry-After`` only with ``send_retry_after``.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        token: str = DEFAULT_TOKEN,
        projects: Collection[str] | None = None,
        rate_limit_per_minute: int | None = None,
        clock: Clock | None = None,
        owner_role: int = ROLE_OWNER,
        send_retry_after: bool = False,
        timezone: str = "UTC",
        task_page_size: int = TASK_PAGE_SIZE,
    ) -> None:
        if owner_role not in (ROLE_OWNER, ROLE_ADMIN, ROLE_MEMBER, ROLE_GUEST):
            raise ValueError("owner_role must be 1 (owner), 2 (admin), 3 (member) or 4 (guest)")
        if task_page_size < 1:
            raise ValueError("task_page_size must be at least 1")
        self.dataset = dataset
        self._only_projects = None if projects is None else frozenset(projects)
        self._token = token
        self._owner_role = owner_role
        self._send_retry_after = send_retry_after
        self._zone = ZoneInfo(timezone)
        self._task_page_size = task_page_size
        self._clock: Clock = clock or time.time
        self._quota = _QuotaWindows(rate_limit_per_minute, self._clock)
        self._quota_layer: AnnouncedQuota | None = None
        self._lock = threading.RLock()
        # The credential is checked before the quota is spent, so a bad token never uses it up.
        self._server = SandboxServer(
            base_path=API_BASE_PATH,
            error_factory=clickup_error,
            inner=(lambda app: Guard(app, self._authenticate), self._limit),
        )
        self._build_catalog()
        self._build_entries()
        self._register_routes()

    # -- catalog ---------------------------------------------------------------------------------

    def _visible(self, project_id: str) -> bool:
        return self._only_projects is None or project_id in self._only_projects

    def _build_catalog(self) -> None:
        ds = self.dataset
        created_ms = str(_ms(datetime.combine(ds.start - timedelta(days=30), datetime.min.time(), tzinfo=UTC)))
        self._users: dict[int, Json] = {}
        self._user_by_contractor: dict[str, int] = {}
        for person in ds.contractors:
            user_id = _USER_BASE + person.index
            self._user_by_contractor[person.id] = user_id
            initials = "".join(part[0] for part in person.name.split()[:2]).upper()
            self._users[user_id] = {
                "id": user_id,
                "username": person.name,
                "email": person.email,
                "color": _COLORS[person.index % len(_COLORS)],
                "profilePicture": f"https://attachments.clickup.com/profilePictures/{user_id}_sbx.jpg",
                "initials": initials,
            }
        # The token belongs to the first contractor, as a personal token belongs to a person.
        self._owner = _USER_BASE
        self._roles = dict.fromkeys(self._users, ROLE_MEMBER)
        if self._owner in self._roles:
            self._roles[self._owner] = self._owner_role
        if _USER_BASE + 1 in self._roles:
            self._roles[_USER_BASE + 1] = ROLE_ADMIN
        codes = sorted({p.code for p in ds.projects if p.code} | {t.code for t in ds.tasks if t.code})
        self._code_options = {
            code: {
                "id": str(uuid.uuid5(_NAMESPACE, f"option:{code}")),
                "name": code,
                "color": _COLORS[i % len(_COLORS)],
                "orderindex": i,
            }
            for i, code in enumerate(codes)
        }
        self._code_field = {
            "id": str(uuid.uuid5(_NAMESPACE, "field:project-code")),
            "name": "Project code",
            "type": "drop_down",
            "type_config": {
                "default": 0,
                "placeholder": None,
                "new_drop_down": True,
                "options": list(self._code_options.values()),
            },
            "date_created": created_ms,
            "hide_from_guests": False,
            "required": False,
        }
        self._client_field = {
            "id": str(uuid.uuid5(_NAMESPACE, "field:client")),
            "name": "Client",
            "type": "short_text",
            "type_config": {},
            "date_created": created_ms,
            "hide_from_guests": False,
            "required": False,
        }
        self._folders: dict[int, Json] = {}
        self._lists: dict[int, Json] = {}
        self._list_by_project: dict[str, int] = {}
        self._list_folder: dict[int, int] = {}
        for project in ds.projects:
            if not self._visible(project.id):
                continue
            client = ds.client(project.client_id)
            folder_id = _FOLDER_BASE + client.index
            self._folders.setdefault(folder_id, {"id": str(folder_id), "name": client.name})
            list_id = _LIST_BASE + project.index
            self._list_by_project[project.id] = list_id
            self._list_folder[list_id] = folder_id
            self._lists[list_id] = {"id": str(list_id), "name": project.name}
        self._tasks: dict[str, Json] = {}
        self._task_list: dict[str, int] = {}
        self._task_by_dataset: dict[str, str] = {}
        self._custom_ids: dict[str, str] = {}
        owner = self._users.get(self._owner)
        for task in ds.tasks:
            if not self._visible(task.project_id):
                continue
            task_id = f"86c{task.index:06d}"
            list_id = self._list_by_project[task.project_id]
            folder_id = self._list_folder[list_id]
            # Every third task carries a custom task id, as Workspaces with the ClickApp switched on do.
            custom_id = f"HB-{1000 + task.index}" if task.index % 3 == 0 else None
            self._task_by_dataset[task.id] = task_id
            self._task_list[task_id] = list_id
            if custom_id is not None:
                self._custom_ids[custom_id] = task_id
            code_value: Json = {} if task.code is None else {"value": self._code_options[task.code]["orderindex"]}
            self._tasks[task_id] = {
                "id": task_id,
                "custom_id": custom_id,
                "custom_item_id": 0,
                "name": task.name,
                "text_content": "",
                "description": "",
                "status": {"status": "in progress", "color": "#4194f6", "type": "custom", "orderindex": 1},
                "orderindex": f"{task.index}.00000000000000000000000000000000",
                "date_created": created_ms,
                "date_updated": created_ms,
                "date_closed": None,
                "date_done": None,
                "archived": False,
                "creator": owner,
                "assignees": [],
                "watchers": [],
                "checklists": [],
                "tags": [self._tag(tag) for tag in task.tags],
                "parent": None,
                "priority": None,
                "due_date": None,
                "start_date": None,
                "points": None,
                "time_estimate": None,
                "custom_fields": [
                    {**self._code_field, **code_value},
                    {**self._client_field, "value": self._folders[folder_id]["name"]},
                ],
                "dependencies": [],
                "linked_tasks": [],
                "locations": [],
                "team_id": TEAM_ID,
                "url": f"https://app.clickup.com/t/{task_id}",
                "permission_level": "create",
                "list": {"id": str(list_id), "name": self._lists[list_id]["name"], "access": True},
                "project": {
                    "id": str(folder_id),
                    "name": self._folders[folder_id]["name"],
                    "hidden": False,
                    "access": True,
                },
                "folder": {
                    "id": str(folder_id),
                    "name": self._folders[folder_id]["name"],
                    "hidden": False,
                    "access": True,
                },
                "space": {"id": str(SPACE_ID)},
            }

    def _tag(self, name: str) -> Json:
        color = _COLORS[sum(name.encode()) % len(_COLORS)]
        return {"name": name, "tag_fg": "#ffffff", "tag_bg": color, "creator": self._owner}

    def _build_entries(self) -> None:
        ds = self.dataset
        self._records: dict[str, _EntryRecord] = {}
        for entry in ds.entries:
            if not self._visible(entry.project_id):
                continue
            user = self._user_by_contractor[entry.person_id]
            week = entry.work_date - timedelta(days=entry.work_date.weekday())
            approval = _APPROVALS.get(entry.approval_status)
            record = _EntryRecord(
                id=str(_ENTRY_BASE + entry.index),
                user=user,
                task=self._task_by_dataset[entry.task_id],
                start_ms=_ms(entry.started_at),
                duration_ms=entry.minutes * 60_000,
                billable=entry.billable,
                approval=approval,
                approval_id=None if approval is None else str(uuid.uuid5(_NAMESPACE, f"approval:{user}:{week}")),
                category=entry.category,
                description=entry.description or "",
                at_ms=_ms(entry.recorded_at),
            )
            self._records[record.id] = record
        if self._tasks and self._owner in self._users:
            # The owner's timer has been running since 08:00 UTC on the last day of the data set.
            started = _ms(datetime.combine(ds.anchor, datetime.min.time(), tzinfo=UTC) + timedelta(hours=8))
            self._records[_TIMER_ID] = _EntryRecord(
                id=_TIMER_ID,
                user=self._owner,
                task=min(self._tasks),
                start_ms=started,
                duration_ms=-started,
                billable=True,
                approval=None,
                approval_id=None,
                category=None,
                description="Timer still running",
                at_ms=started,
            )
        self._add_entries_without_task()
        self._max_duration_ms = max((r.duration_ms for r in self._records.values()), default=0)
        self._reindex()

    def _add_entries_without_task(self) -> None:
        """One stopped entry with no task per member who tracked time, on a day inside the data set.

        ClickUp: time can be logged without a task (a timesheet row, or the API without ``tid``); such
        an entry comes back with ``task`` null and no location, so only rules that do not need a task
        or a list can map it. Every consumer of the emulator meets a few.
        """
        ds = self.dataset
        days = (ds.anchor - ds.start).days
        if days < 1:
            return
        people = sorted({r.user for r in self._records.values() if r.id != _TIMER_ID})
        for i, user in enumerate(people):
            day = ds.start + timedelta(days=(3 + 5 * i) % days)
            started = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=16)
            record = _EntryRecord(
                id=str(_NO_TASK_BASE + i),
                user=user,
                task=None,
                start_ms=_ms(started),
                duration_ms=_NO_TASK_MINUTES * 60_000,
                billable=False,
                approval=None,
                approval_id=None,
                category=None,
                description="Admin time, no task",
                at_ms=_ms(started + timedelta(minutes=_NO_TASK_MINUTES)),
            )
            self._records[record.id] = record

    def _reindex(self) -> None:
        self._order = sorted((r.start_ms, r.id) for r in self._records.values())
        self._starts = [start for start, _ in self._order]

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def team_id(self) -> str:
        return TEAM_ID

    # -- ids -------------------------------------------------------------------------------------

    @property
    def owner_id(self) -> str:
        return str(self._owner)

    @property
    def running_timer_id(self) -> str:
        return _TIMER_ID

    def entry_id(self, dataset_entry_id: str) -> str:
        return str(_ENTRY_BASE + self.dataset.entry(dataset_entry_id).index)

    def task_id(self, dataset_task_id: str) -> str:
        return self._task_by_dataset[dataset_task_id]

    def list_id(self, project_id: str) -> str:
        return str(self._list_by_project[project_id])

    def user_id(self, contractor_id: str) -> str:
        return str(self._user_by_contractor[contractor_id])

    @property
    def entries_without_task(self) -> list[str]:
        """Ids of the stopped entries logged without a task."""
        with self._lock:
            return sorted(r.id for r in self._records.values() if r.task is None)

    def stopped_without_task(self) -> list[tuple[str, str, int, int, str]]:
        """(id, user id, start ms, duration ms, description) of each stopped entry logged without a task."""
        with self._lock:
            return sorted(
                (r.id, str(r.user), r.start_ms, r.duration_ms, r.description)
                for r in self._records.values()
                if r.task is None and not r.running
            )

    def task_custom_id(self, task_id: str) -> str | None:
        custom: str | None = self._tasks[task_id]["custom_id"]
        return custom

    # -- controls --------------------------------------------------------------------------------

    def set_rate_limit(self, per_minute: int | None) -> None:
        self._quota.set_limit(per_minute)

    @property
    def rate_limited_count(self) -> int:
        return 0 if self._quota_layer is None else self._quota_layer.limited

    def fail_next(self, route_name: str, n: int, status: int, headers: Mapping[str, str] | None = None) -> None:
        """Answer the next ``n`` requests to ``route_name`` (see ``ROUTES``) with ``status``."""
        self._server.fail_next(route_name, n, status, headers)

    def call_count(self, route_name: str | None = None) -> int:
        return self._server.call_count(route_name)

    def reset_counts(self) -> None:
        self._server.reset_counts()

    def edit_entry(
        self,
        entry_id: str,
        *,
        duration_minutes: int | None = None,
        description: str | None = None,
        billable: bool | None = None,
        start: datetime | None = None,
    ) -> None:
        """Change a stopped entry like a user would; ``at`` moves to now."""
        with self._lock:
            record = self._record(entry_id)
            if duration_minutes is not None:
                if duration_minutes <= 0:
                    raise ValueError("duration_minutes must be greater than 0")
                record.duration_ms = duration_minutes * 60_000
                self._max_duration_ms = max(self._max_duration_ms, record.duration_ms)
            if description is not None:
                record.description = description
            if billable is not None:
                record.billable = billable
            if start is not None:
                record.start_ms = _ms(start.astimezone(UTC))
            record.at_ms = int(self._clock() * 1000)
            self._reindex()

    def delete_entry(self, entry_id: str) -> None:
        with self._lock:
            del self._records[self._record(entry_id).id]
            self._reindex()

    def _record(self, entry_id: str) -> _EntryRecord:
        record = self._records.get(entry_id)
        if record is None:
            raise KeyError(f"unknown time entry id {entry_id}")
        return record

    def _day(self, record: _EntryRecord) -> date:
        return (_EPOCH + timedelta(milliseconds=record.start_ms)).astimezone(self._zone).date()

    def _stopped_in(self, start: date | None, end: date | None) -> list[_EntryRecord]:
        records = (self._records[entry_id] for _, entry_id in self._order)
        return [
            r
            for r in records
            if not r.running and (start is None or self._day(r) >= start) and (end is None or self._day(r) <= end)
        ]

    def entry_ids(self, start: date | None = None, end: date | None = None) -> list[str]:
        """Ids of the stopped entries whose start falls on a day in ``[start, end]`` (sandbox time zone)."""
        with self._lock:
            return [r.id for r in self._stopped_in(start, end)]

    def total_minutes(self, start: date | None = None, end: date | None = None) -> int:
        """Minutes of the stopped (edited) entries whose start falls on a day in ``[start, end]``."""
        with self._lock:
            return sum(r.duration_ms for r in self._stopped_in(start, end)) // 60_000

    # -- HTTP ------------------------------------------------------------------------------------

    def _register_routes(self) -> None:
        add = self._server.route
        add("GET", "/v2/user", self._endpoint(self._get_user), name=USER_GET)
        add("GET", "/v2/team", self._endpoint(self._list_teams), name=TEAMS_LIST)
        add("GET", "/v2/team/<team_id>/time_entries", self._endpoint(self._list_entries), name=TIME_ENTRIES_LIST)
        add("GET", "/v2/team/<team_id>/task", self._endpoint(self._list_tasks), name=TASKS_LIST)
        add("GET", "/v2/task/<task_id>", self._endpoint(self._get_task), name=TASK_GET)

    def _authenticate(self, request: Request) -> Response | None:
        # ClickUp: the token is the whole Authorization header, with no "Bearer" scheme.
        presented = request.headers.get("authorization", "")
        if not presented or not hmac.compare_digest(presented.encode(), self._token.encode()):
            return clickup_error(401, "Token invalid")
        return None

    def _limit(self, app: WSGIApplication) -> WSGIApplication:
        def refuse(quota: dict[str, str]) -> Response:
            headers = dict(quota)
            if self._send_retry_after:
                headers["Retry-After"] = str(max(1, int(quota["X-RateLimit-Reset"]) - math.floor(self._clock())))
            return with_headers(clickup_error(429, "Rate limit reached"), headers)

        self._quota_layer = AnnouncedQuota(
            app, lambda request: self._quota.take(request.headers.get("authorization", "")), refuse
        )
        return self._quota_layer

    def _endpoint(self, handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def wrapped(request: Request) -> Response:
            try:
                with self._lock:
                    return handler(request)
            except _ApiError as error:
                return clickup_error(error.status, error.message)

        return wrapped

    def _member_user(self, user_id: int) -> Json:
        return {**self._users[user_id], "role": self._roles[user_id], "custom_role": None}

    def _get_user(self, request: Request) -> Response:
        user = {**self._users[self._owner], "week_start_day": 1, "global_font_support": True, "timezone": "UTC"}
        return json_response({"user": user})

    def _list_teams(self, request: Request) -> Response:
        members = [{"user": self._member_user(user_id)} for user_id in sorted(self._users)]
        team = {
            "id": TEAM_ID,
            "name": TEAM_NAME,
            "color": "#7b68ee",
            "avatar": "https://clickup.com/avatar.jpg",
            "members": members,
        }
        return json_response({"teams": [team]})

    def _check_team(self, request: Request) -> None:
        if request.params["team_id"] != TEAM_ID:
            raise _ApiError(401, "Team not authorized")

    @staticmethod
    def _flag(request: Request, name: str) -> bool:
        return (request.arg(name) or "").lower() == "true"

    @staticmethod
    def _number(request: Request, name: str) -> int | None:
        value = request.arg(name)
        if value is None or value == "":
            return None
        try:
            return int(float(value))
        except ValueError:
            raise _ApiError(400, f"{name} must be a Unix time in milliseconds") from None

    def _list_entries(self, request: Request) -> Response:
        self._check_team(request)
        end = self._number(request, "end_date")
        start = self._number(request, "start_date")
        # ClickUp: with no dates the range is the last 30 days.
        if end is None:
            end = int(self._clock() * 1000)
        if start is None:
            start = end - DEFAULT_RANGE_MS
        assignee = request.arg("assignee")
        if assignee is None or assignee == "":
            users = {self._owner}  # without assignee ClickUp answers only the token owner's entries
        else:
            try:
                users = {int(part) for part in assignee.split(",") if part.strip()}
            except ValueError:
                raise _ApiError(400, "assignee must be comma-separated user ids") from None
            if users - {self._owner} and self._owner_role not in (ROLE_OWNER, ROLE_ADMIN):
                raise _ApiError(401, "Only Workspace owners and admins can view other users' time entries")
        locations = [name for name in ("space_id", "folder_id", "list_id", "task_id") if request.arg(name)]
        if len(locations) > 1:
            raise _ApiError(400, "Only one of space_id, folder_id, list_id or task_id may be given")
        billable = request.arg("is_billable")
        names = self._flag(request, "include_location_names")
        task_tags = self._flag(request, "include_task_tags")
        approval = self._flag(request, "include_approval_details") or self._flag(request, "include_approval_history")
        # Overlap: an entry counts when any part of it lies in [start, end]; a running one never ends.
        low = bisect_left(self._starts, start - self._max_duration_ms)
        high = bisect_right(self._starts, end)
        data: list[Json] = []
        for _, entry_id in self._order[low:high]:
            record = self._records[entry_id]
            record_end = record.end_ms
            if record.user not in users or (record_end is not None and record_end < start):
                continue
            if billable is not None and record.billable != (billable.lower() == "true"):
                continue
            if locations and not self._at_location(record, locations[0], request.arg(locations[0]) or ""):
                continue
            data.append(self._entry_json(record, names=names, task_tags=task_tags, approval=approval))
        return json_response({"data": data})

    def _at_location(self, record: _EntryRecord, kind: str, value: str) -> bool:
        if record.task is None:
            return False  # an entry without a task is in no space, folder, list or task
        list_id = self._task_list[record.task]
        if kind == "task_id":
            return record.task == value
        if kind == "list_id":
            return str(list_id) == value
        if kind == "folder_id":
            return str(self._list_folder[list_id]) == value
        return str(SPACE_ID) == value

    def _entry_json(self, record: _EntryRecord, *, names: bool, task_tags: bool, approval: bool) -> Json:
        if record.task is None:
            return self._entry_without_task_json(record, task_tags=task_tags)
        task = self._tasks[record.task]
        list_id = self._task_list[record.task]
        folder_id = self._list_folder[list_id]
        location: Json = {"list_id": list_id, "folder_id": folder_id, "space_id": SPACE_ID}
        if names:
            location |= {
                "list_name": self._lists[list_id]["name"],
                "folder_name": self._folders[folder_id]["name"],
                "space_name": SPACE_NAME,
            }
        out: Json = {
            "id": record.id,
            "task": {
                "id": task["id"],
                "custom_id": task["custom_id"],
                "name": task["name"],
                "status": task["status"],
                "custom_type": None,
            },
            "wid": TEAM_ID,
            "user": self._users[record.user],
            "billable": record.billable,
            # The schema types these as strings of Unix ms; answers carry strings here.
            "start": str(record.start_ms),
            "duration": str(record.duration_ms),
            "description": record.description,
            # The schema types an entry's tags as names; the category stands in as its one tag.
            "tags": [] if record.category is None else [record.category],
            "source": "clickup",
            "at": str(record.at_ms),
            "task_location": location,
            "task_url": task["url"],
        }
        if record.end_ms is not None:
            out["end"] = str(record.end_ms)
        if task_tags:
            out["task_tags"] = task["tags"]
        if approval and record.approval is not None:
            out["approval_id"] = record.approval_id
            out["approval"] = {"id": record.approval_id, "workspace_id": int(TEAM_ID), "status": record.approval}
        return out

    def _entry_without_task_json(self, record: _EntryRecord, *, task_tags: bool) -> Json:
        # ClickUp: no task, so ``task``, its location and its URL are null, and it has no task tags.
        out: Json = {
            "id": record.id,
            "task": None,
            "wid": TEAM_ID,
            "user": self._users[record.user],
            "billable": record.billable,
            "start": str(record.start_ms),
            "end": str(record.start_ms + record.duration_ms),
            "duration": str(record.duration_ms),
            "description": record.description,
            "tags": [],
            "source": "clickup",
            "at": str(record.at_ms),
            "task_location": None,
            "task_url": None,
        }
        if task_tags:
            out["task_tags"] = []
        return out

    def _list_tasks(self, request: Request) -> Response:
        self._check_team(request)
        page_text = request.arg("page") or "0"
        if not page_text.isdigit():
            raise _ApiError(400, "page must be a non-negative integer")
        page = int(page_text)
        lists = set(request.args.getlist("list_ids[]"))
        folders = set(request.args.getlist("project_ids[]"))
        spaces = set(request.args.getlist("space_ids[]"))
        selected = [
            task
            for task_id, task in self._tasks.items()
            if (not lists or str(self._task_list[task_id]) in lists)
            and (not folders or str(self._list_folder[self._task_list[task_id]]) in folders)
            and (not spaces or str(SPACE_ID) in spaces)
        ]
        size = self._task_page_size
        chunk = selected[page * size : (page + 1) * size]
        return json_response({"tasks": chunk, "last_page": (page + 1) * size >= len(selected)})

    def _get_task(self, request: Request) -> Response:
        wanted = request.params["task_id"]
        if self._flag(request, "custom_task_ids"):
            if request.arg("team_id") != TEAM_ID:
                raise _ApiError(400, "team_id is required with custom_task_ids=true")
            wanted = self._custom_ids.get(wanted, "")
        task = self._tasks.get(wanted)
        if task is None:
            raise _ApiError(404, "Task not found, deleted")
        return json_response(task)
