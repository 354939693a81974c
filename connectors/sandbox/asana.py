"""A local emulator of the Asana REST API's time-tracking read side, serving a seeded data set."""

from __future__ import annotations

import hmac
import re
import threading
import time as time_module
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from urllib.parse import urlencode

from connectors.sandbox._asana_opt_fields import OPT_FIELDS
from connectors.sandbox._asana_wire import (
    ENTRY_COMPACT,
    ENTRY_FULL,
    LIST_OPT_FIELDS,
    NAMED_COMPACT,
    OFFSET_TTL_SECONDS,
    TASK_COMPACT,
    USER_FULL,
    ApiError,
    Json,
    OffsetTokens,
    Tree,
    asana_error,
    parse_tree,
    pick_fields,
)
from connectors.sandbox._http import Request, Response, json_response
from connectors.sandbox._middleware import Clock
from connectors.sandbox._server import HostedSandbox, SandboxServer
from connectors.sandbox.dataset import Dataset

API_BASE_PATH = "/api/1.0"
DEFAULT_TOKEN = "sandbox-asana-token"  # noqa: S105  (a fake credential the local emulator accepts)
MAX_PAGE_SIZE = 100
# Unpaginated reads are "truncated at about 1000 objects" per Asana's pagination guide; we refuse
# instead, so a client that forgets ``limit`` fails loudly here rather than silently in production.
MAX_UNPAGED = 1000

# Route names, for ``fail_next`` and ``call_count``.
USERS_GET = "users.get"
WORKSPACES_LIST = "workspaces.list"
WORKSPACE_USERS_LIST = "workspaces.users"
PROJECTS_LIST = "projects.list"
PROJECTS_GET = "projects.get"
TASKS_LIST = "tasks.list"
TASKS_GET = "tasks.get"
ENTRIES_LIST = "time_tracking_entries.list"
ENTRIES_GET = "time_tracking_entries.get"
TASK_ENTRIES_LIST = "tasks.time_tracking_entries"
TIMESHEETS_LIST = "timesheet_approval_statuses.list"
ROUTES = (
    USERS_GET,
    WORKSPACES_LIST,
    WORKSPACE_USERS_LIST,
    PROJECTS_LIST,
    PROJECTS_GET,
    TASKS_LIST,
    TASKS_GET,
    ENTRIES_LIST,
    ENTRIES_GET,
    TASK_ENTRIES_LIST,
    TIMESHEETS_LIST,
)
# The spec path of each route: whose ``opt_fields`` enum the strict mode enforces.
SPEC_PATHS = {
    USERS_GET: "/users/{user_gid}",
    WORKSPACES_LIST: "/workspaces",
    WORKSPACE_USERS_LIST: "/workspaces/{workspace_gid}/users",
    PROJECTS_LIST: "/projects",
    PROJECTS_GET: "/projects/{project_gid}",
    TASKS_LIST: "/tasks",
    TASKS_GET: "/tasks/{task_gid}",
    ENTRIES_LIST: "/time_tracking_entries",
    ENTRIES_GET: "/time_tracking_entries/{time_tracking_entry_gid}",
    TASK_ENTRIES_LIST: "/tasks/{task_gid}/time_tracking_entries",
    TIMESHEETS_LIST: "/timesheet_approval_statuses",
}

BILLABLE_STATUSES = ("billable", "nonBillable", "notApplicable")
APPROVAL_STATUSES = ("DRAFT", "SUBMITTED", "APPROVED", "REJECTED")

# Gids are numeric strings; each kind lives in its own block so they never collide.
_WORKSPACE_BASE = 1200000000000001
_USER_BASE = 1201000000000001
_PROJECT_BASE = 1202000000000001
_TASK_BASE = 1203000000000001
_TAG_BASE = 1204000000000001
_FIELD_BASE = 1205000000000001
_OPTION_BASE = 1206000000000001
_CATEGORY_BASE = 1207000000000001
_TIMESHEET_BASE = 1208000000000001
_ENTRY_BASE = 1209000000000001

_WORKSPACE_NAMES = ("Example Consulting", "Example Studio")
_CATEGORY_COLORS = {
    "Development": "blue",
    "Meetings": "yellow",
    "Design": "purple",
    "Support": "orange",
    "Project management": "cool-gray",
}
_OPTION_COLORS = ("blue", "green", "orange", "purple", "aqua", "red", "indigo", "yellow-green")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(slots=True)
class _EntryRecord:
    gid: int
    workspace: int
    entered_on: date
    duration_minutes: int
    user: int
    task: int
    project: int
    category: int | None
    billable_status: str
    approval_status: str
    description: str
    created_at: datetime


def _iso_instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class AsanaSandbox(HostedSandbox):
    """Asana on 127.0.0.1: users, workspaces, projects, tasks and time tracking entries, with controls.

    Each data-set project becomes an Asana project (``attributable_to``), each task a task carrying the
    "Project code" enum custom field, each contractor a user (``created_by``), each entry a time
    tracking entry (minutes → ``duration_minutes``, work date → ``entered_on``).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        token: str = DEFAULT_TOKEN,
        list_full_fields: bool = False,
        rate_limit_per_minute: int | None = None,
        plan_has_time_tracking: bool = True,
        clock: Clock | None = None,
        workspaces: int = 1,
        projects: Collection[str] | None = None,
        strict_opt_fields: bool = True,
        offset_ttl_seconds: float | None = OFFSET_TTL_SECONDS,
    ) -> None:
        if workspaces not in (1, 2):
            raise ValueError("the Asana sandbox serves one or two workspaces")
        self.dataset = dataset
        # Only these data-set projects carry time here (the demo spreads projects over three tools).
        self._only_projects = None if projects is None else frozenset(projects)
        self._token = token
        # Whether the list endpoints return task, billable, approval, description and created_at
        # (unconfirmed for the real API; the spec's list schema is the compact one). In strict mode
        # they come back unasked, since asking for them is refused; otherwise only when asked.
        self._list_full_fields = list_full_fields
        # Strict: 400 for an ``opt_fields`` value outside the endpoint's enum in the spec.
        self._strict_opt_fields = strict_opt_fields
        self._plan_has_time_tracking = plan_has_time_tracking
        self._lock = threading.RLock()
        self._offsets = OffsetTokens(clock or time_module.monotonic, offset_ttl_seconds)
        self._server = SandboxServer(
            base_path=API_BASE_PATH,
            clock=clock,
            rate_limit_per_minute=rate_limit_per_minute,
            error_factory=asana_error,
        )
        self._build_catalog(workspaces)
        self._build_entries()
        self._register_routes()

    # -- catalog ---------------------------------------------------------------------------------

    def _build_catalog(self, n_workspaces: int) -> None:
        ds = self.dataset
        self._workspaces: dict[int, Json] = {}
        for i in range(n_workspaces):
            gid = _WORKSPACE_BASE + i
            self._workspaces[gid] = {
                "gid": str(gid),
                "resource_type": "workspace",
                "name": _WORKSPACE_NAMES[i],
                "is_organization": True,
                "email_domains": ["example.com"],
            }
        ws_gids = sorted(self._workspaces)
        # With two workspaces the clients are split between them, so each scope has its own projects.
        split = (len(ds.clients) + 1) // 2
        client_ws = {c.id: ws_gids[0] if n_workspaces == 1 or c.index < split else ws_gids[1] for c in ds.clients}
        self._users: dict[int, Json] = {}
        self._user_by_contractor: dict[str, int] = {}
        for person in ds.contractors:
            gid = _USER_BASE + person.index
            self._user_by_contractor[person.id] = gid
            self._users[gid] = {
                "gid": str(gid),
                "resource_type": "user",
                "name": person.name,
                "email": person.email,
                "photo": None,
                "workspaces": [self._ref(self._workspaces[w]) for w in ws_gids],
            }
        # The token belongs to the first contractor, as a PAT belongs to a person.
        self._owner = _USER_BASE + ds.contractors[0].index if ds.contractors else _USER_BASE
        codes = sorted({p.code for p in ds.projects if p.code} | {t.code for t in ds.tasks if t.code})
        self._categories: dict[tuple[int, str], Json] = {}
        self._tags: dict[tuple[int, str], Json] = {}
        self._code_fields: dict[int, Json] = {}
        self._client_fields: dict[int, Json] = {}
        self._options: dict[tuple[int, str], Json] = {}
        for w_i, ws in enumerate(ws_gids):
            for c_i, name in enumerate(ds.categories):
                self._categories[(ws, name)] = {
                    "gid": str(_CATEGORY_BASE + w_i * 100 + c_i),
                    "resource_type": "time_tracking_category",
                    "name": name,
                    "color": _CATEGORY_COLORS.get(name, "none"),
                }
            for t_i, tag in enumerate(("billable", "internal")):
                self._tags[(ws, tag)] = {
                    "gid": str(_TAG_BASE + w_i * 100 + t_i),
                    "resource_type": "tag",
                    "name": tag,
                }
            for o_i, code in enumerate(codes):
                self._options[(ws, code)] = {
                    "gid": str(_OPTION_BASE + w_i * 1000 + o_i),
                    "resource_type": "enum_option",
                    "name": code,
                    "enabled": True,
                    "color": _OPTION_COLORS[o_i % len(_OPTION_COLORS)],
                }
            self._code_fields[ws] = {
                "gid": str(_FIELD_BASE + w_i * 10),
                "resource_type": "custom_field",
                "name": "Project code",
                "type": "enum",
                "resource_subtype": "enum",
                "enabled": True,
            }
            self._client_fields[ws] = {
                "gid": str(_FIELD_BASE + w_i * 10 + 1),
                "resource_type": "custom_field",
                "name": "Client",
                "type": "text",
                "resource_subtype": "text",
                "enabled": True,
            }
        self._projects: dict[int, Json] = {}
        self._project_ws: dict[int, int] = {}
        self._project_by_id: dict[str, int] = {}
        for project in ds.projects:
            gid = _PROJECT_BASE + project.index
            ws = client_ws[project.client_id]
            self._project_by_id[project.id] = gid
            self._project_ws[gid] = ws
            self._projects[gid] = {
                "gid": str(gid),
                "resource_type": "project",
                "name": project.name,
                "archived": False,
                "color": "light-green",
                "notes": "",
                "workspace": self._ref(self._workspaces[ws]),
                "custom_fields": [
                    self._enum_value(ws, project.code),
                    {
                        **self._client_fields[ws],
                        "text_value": ds.client(project.client_id).name,
                        "display_value": ds.client(project.client_id).name,
                    },
                ],
                "permalink_url": f"https://app.asana.com/0/{gid}/list",
            }
        self._tasks: dict[int, Json] = {}
        self._task_project: dict[int, int] = {}
        self._task_by_id: dict[str, int] = {}
        owner_ref = {"gid": str(self._owner), "resource_type": "user"}
        for task in ds.tasks:
            gid = _TASK_BASE + task.index
            project_gid = self._project_by_id[task.project_id]
            ws = self._project_ws[project_gid]
            self._task_by_id[task.id] = gid
            self._task_project[gid] = project_gid
            self._tasks[gid] = {
                "gid": str(gid),
                "resource_type": "task",
                "name": task.name,
                "resource_subtype": "default_task",
                "created_by": owner_ref,
                "completed": False,
                # "Project code" is a workspace-wide library field on every project: null where unset.
                "custom_fields": [self._enum_value(ws, task.code)],
                "tags": [self._ref(self._tags[(ws, tag)]) for tag in task.tags],
                "projects": [self._ref(self._projects[project_gid])],
                "workspace": self._ref(self._workspaces[ws]),
                "permalink_url": f"https://app.asana.com/0/{project_gid}/{gid}",
            }

    @staticmethod
    def _ref(obj: Json) -> Json:
        return {"gid": obj["gid"], "resource_type": obj["resource_type"], "name": obj["name"]}

    def _enum_value(self, ws: int, code: str | None) -> Json:
        option = None if code is None else self._options[(ws, code)]
        return {
            **self._code_fields[ws],
            "enum_value": option,
            "display_value": None if option is None else option["name"],
        }

    def _build_entries(self) -> None:
        ds = self.dataset
        self._records: dict[int, _EntryRecord] = {}
        for entry in ds.entries:
            if self._only_projects is not None and entry.project_id not in self._only_projects:
                continue
            gid = _ENTRY_BASE + entry.index
            project = self._project_by_id[entry.project_id]
            ws = self._project_ws[project]
            category = None if entry.category is None else int(self._categories[(ws, entry.category)]["gid"])
            self._records[gid] = _EntryRecord(
                gid=gid,
                workspace=ws,
                entered_on=entry.work_date,
                duration_minutes=entry.minutes,
                user=self._user_by_contractor[entry.person_id],
                task=self._task_by_id[entry.task_id],
                project=project,
                category=category,
                billable_status="billable" if entry.billable else "nonBillable",
                approval_status=entry.approval_status,
                description=entry.description or "",
                created_at=entry.recorded_at,
            )
        self._next_entry = _ENTRY_BASE + len(ds.entries)
        self._category_by_gid = {int(c["gid"]): c for c in self._categories.values()}
        self._reindex()

    def _reindex(self) -> None:
        self._order = sorted((r.entered_on.toordinal(), r.gid) for r in self._records.values())
        self._actual: dict[int, int] | None = None

    def _actual_minutes(self) -> dict[int, int]:
        if self._actual is None:
            sums = dict.fromkeys(self._tasks, 0)
            for record in self._records.values():
                sums[record.task] += record.duration_minutes
            self._actual = sums
        return self._actual

    # -- lifecycle -------------------------------------------------------------------------------

    # -- ids -------------------------------------------------------------------------------------

    @property
    def workspace_gids(self) -> list[str]:
        return [str(g) for g in sorted(self._workspaces)]

    @property
    def owner_gid(self) -> str:
        return str(self._owner)

    def entry_gid(self, entry_id: str) -> str:
        return str(_ENTRY_BASE + self.dataset.entry(entry_id).index)

    def task_gid(self, task_id: str) -> str:
        return str(self._task_by_id[task_id])

    def project_gid(self, project_id: str) -> str:
        return str(self._project_by_id[project_id])

    def user_gid(self, contractor_id: str) -> str:
        return str(self._user_by_contractor[contractor_id])

    def project_workspace_gid(self, project_gid: str) -> str:
        return str(self._project_ws[int(project_gid)])

    # -- controls --------------------------------------------------------------------------------

    def set_list_full_fields(self, value: bool) -> None:
        with self._lock:
            self._list_full_fields = value

    def set_strict_opt_fields(self, value: bool) -> None:
        with self._lock:
            self._strict_opt_fields = value

    def set_offset_ttl(self, seconds: float | None) -> None:
        """Offsets older than ``seconds`` (by the emulator's clock) are refused; None: never."""
        with self._lock:
            self._offsets.ttl = seconds

    def set_timesheet_status(self, user_gid: str, day: date, status: str) -> None:
        """Set the approval status of ``user_gid``'s timesheet for the week of ``day`` (every workspace)."""
        status = _checked(status, APPROVAL_STATUSES, "approval_status")
        monday = _monday(day)
        with self._lock:
            for record in self._records.values():
                if record.user == int(user_gid) and _monday(record.entered_on) == monday:
                    record.approval_status = status

    def set_plan_has_time_tracking(self, value: bool) -> None:
        with self._lock:
            self._plan_has_time_tracking = value

    def set_rate_limit(self, per_minute: int | None) -> None:
        self._server.set_rate_limit(per_minute)

    def fail_next(self, route_name: str, n: int, status: int, headers: Mapping[str, str] | None = None) -> None:
        """Answer the next ``n`` requests to ``route_name`` (see ``ROUTES``) with ``status``."""
        self._server.fail_next(route_name, n, status, headers)

    def call_count(self, route_name: str | None = None) -> int:
        return self._server.call_count(route_name)

    def edit_entry(
        self,
        gid: str,
        *,
        duration_minutes: int | None = None,
        entered_on: date | None = None,
        description: str | None = None,
        billable_status: str | None = None,
        approval_status: str | None = None,
    ) -> None:
        with self._lock:
            record = self._record(gid)
            if duration_minutes is not None:
                if duration_minutes <= 0:
                    raise ValueError("duration_minutes must be greater than 0")
                record.duration_minutes = duration_minutes
            if description is not None:
                record.description = description
            if billable_status is not None:
                record.billable_status = _checked(billable_status, BILLABLE_STATUSES, "billable_status")
            if entered_on is not None:
                record.entered_on = entered_on
            if approval_status is not None:
                # Asana: approval belongs to the timesheet (a person's week), so it moves every entry of it.
                status = _checked(approval_status, APPROVAL_STATUSES, "approval_status")
                week = _monday(record.entered_on)
                for other in self._records.values():
                    if (other.user, other.workspace, _monday(other.entered_on)) == (
                        record.user,
                        record.workspace,
                        week,
                    ):
                        other.approval_status = status
            self._reindex()

    def delete_entry(self, gid: str) -> None:
        with self._lock:
            record = self._record(gid)
            del self._records[record.gid]
            self._reindex()

    def add_entry(
        self,
        *,
        task_gid: str,
        entered_on: date,
        duration_minutes: int,
        user_gid: str | None = None,
        attributable_to: str | None = None,
        billable_status: str = "billable",
        approval_status: str = "DRAFT",
        description: str = "",
        category: str | None = None,
        created_at: datetime | None = None,
    ) -> str:
        """Log time like a user would; returns the new entry's gid."""
        if duration_minutes <= 0:
            raise ValueError("duration_minutes must be greater than 0")
        with self._lock:
            task = int(task_gid)
            if task not in self._tasks:
                raise KeyError(f"unknown task gid {task_gid}")
            project = int(attributable_to) if attributable_to else self._task_project[task]
            if project not in self._projects:
                raise KeyError(f"unknown project gid {attributable_to}")
            user = int(user_gid) if user_gid else self._owner
            if user not in self._users:
                raise KeyError(f"unknown user gid {user_gid}")
            ws = self._project_ws[project]
            category_gid = None if category is None else int(self._categories[(ws, category)]["gid"])
            gid = self._next_entry
            self._next_entry += 1
            self._records[gid] = _EntryRecord(
                gid=gid,
                workspace=ws,
                entered_on=entered_on,
                duration_minutes=duration_minutes,
                user=user,
                task=task,
                project=project,
                category=category_gid,
                billable_status=_checked(billable_status, BILLABLE_STATUSES, "billable_status"),
                approval_status=_checked(approval_status, APPROVAL_STATUSES, "approval_status"),
                description=description,
                created_at=created_at or datetime.combine(entered_on, time(17), tzinfo=UTC),
            )
            self._reindex()
            return str(gid)

    def total_minutes(self, start: date | None = None, end: date | None = None) -> int:
        """Minutes of the current (edited) entries with ``entered_on`` in ``[start, end]``."""
        with self._lock:
            return sum(r.duration_minutes for r in self._records.values() if _within(r.entered_on, start, end))

    def entry_gids(self, start: date | None = None, end: date | None = None) -> list[str]:
        """Gids of the current entries in ``[start, end]``, in list order."""
        with self._lock:
            return [str(gid) for ordinal, gid in self._order if _within(date.fromordinal(ordinal), start, end)]

    def _record(self, gid: str) -> _EntryRecord:
        try:
            return self._records[int(gid)]
        except (KeyError, ValueError):
            raise KeyError(f"unknown time tracking entry gid {gid}") from None

    # -- HTTP ------------------------------------------------------------------------------------

    def _register_routes(self) -> None:
        add = self._server.route
        add("GET", "/users/<user_gid>", self._endpoint(self._get_user), name=USERS_GET)
        add("GET", "/workspaces", self._endpoint(self._list_workspaces), name=WORKSPACES_LIST)
        add(
            "GET",
            "/workspaces/<workspace_gid>/users",
            self._endpoint(self._list_workspace_users),
            name=WORKSPACE_USERS_LIST,
        )
        add("GET", "/projects", self._endpoint(self._list_projects), name=PROJECTS_LIST)
        add("GET", "/projects/<project_gid>", self._endpoint(self._get_project), name=PROJECTS_GET)
        add("GET", "/tasks", self._endpoint(self._list_tasks), name=TASKS_LIST)
        add("GET", "/tasks/<task_gid>", self._endpoint(self._get_task), name=TASKS_GET)
        add(
            "GET",
            "/time_tracking_entries",
            self._endpoint(self._list_entries, time_tracking=True),
            name=ENTRIES_LIST,
        )
        add(
            "GET",
            "/time_tracking_entries/<time_tracking_entry_gid>",
            self._endpoint(self._get_entry, time_tracking=True),
            name=ENTRIES_GET,
        )
        add(
            "GET",
            "/tasks/<task_gid>/time_tracking_entries",
            self._endpoint(self._list_task_entries, time_tracking=True),
            name=TASK_ENTRIES_LIST,
        )
        add(
            "GET",
            "/timesheet_approval_statuses",
            self._endpoint(self._list_timesheets, time_tracking=True),
            name=TIMESHEETS_LIST,
        )

    def _endpoint(
        self, handler: Callable[[Request], Response], *, time_tracking: bool = False
    ) -> Callable[[Request], Response]:
        def wrapped(request: Request) -> Response:
            presented = request.bearer_token
            if presented is None or not hmac.compare_digest(presented.encode(), self._token.encode()):
                return asana_error(401, "Not Authorized")
            try:
                with self._lock:
                    if time_tracking and not self._plan_has_time_tracking:
                        # Time tracking is a paid feature; Asana answers 402 PaymentRequired.
                        raise ApiError(
                            402,
                            "Time tracking entries are above your current premium level. "
                            "Upgrade the workspace's plan to use this feature.",
                        )
                    if self._strict_opt_fields:
                        self._check_opt_fields(request)
                    return handler(request)
            except ApiError as error:
                return asana_error(error.status, error.message)

        return wrapped

    @staticmethod
    def _check_opt_fields(request: Request) -> None:
        """Refuse ``opt_fields`` values outside the enum the spec gives this endpoint, as Asana does."""
        allowed = OPT_FIELDS[SPEC_PATHS[request.route]]
        for value in request.args.getlist("opt_fields"):
            for part in value.split(","):
                name = part.strip()
                if name and name not in allowed:
                    raise ApiError(400, f"opt_fields: Unknown value: {name}")

    def _fields(self, request: Request, default: Tree, *, allowed: frozenset[str] | None = None) -> Tree:
        raw = request.args.getlist("opt_fields")
        if not raw:
            return default
        wanted = {part.strip() for value in raw for part in value.split(",") if part.strip()}
        if allowed is not None:
            wanted &= allowed
        return parse_tree(wanted)

    def _list_fields(self, request: Request) -> Tree:
        if self._strict_opt_fields:
            # Asking for more was refused already; a list that returns the full object does so unasked.
            tree = self._fields(request, ENTRY_COMPACT)
            return {**tree, **_FULL_ONLY} if self._list_full_fields else tree
        # Lenient: only the spec's list enum is honoured when full fields are off; the rest is dropped.
        allowed = None if self._list_full_fields else LIST_OPT_FIELDS
        return self._fields(request, ENTRY_COMPACT, allowed=allowed)

    # paging ---------------------------------------------------------------------------------------

    def _paged(
        self,
        request: Request,
        select: Callable[[list[int] | None], Iterator[tuple[list[int], Json]]],
        tree: Tree,
    ) -> Response:
        limit_text = request.arg("limit")
        limit: int | None = None
        if limit_text is not None:
            try:
                limit = int(limit_text)
            except ValueError:
                raise ApiError(400, f"limit: Not a valid integer: {limit_text!r}") from None
            if not 1 <= limit <= MAX_PAGE_SIZE:
                raise ApiError(400, f"limit: The value must be between 1 and {MAX_PAGE_SIZE}.")
        query_hash = self._offsets.query_hash(request)
        offset = request.arg("offset")
        after = None if offset is None else self._offsets.decode(offset, query_hash)
        if limit is None and after is None:
            items = list(islice(select(None), MAX_UNPAGED + 1))
            if len(items) > MAX_UNPAGED:
                raise ApiError(
                    400, "The result is too large. You should use pagination (may require specifying a workspace)!"
                )
            return json_response({"data": [pick_fields(item, tree) for _, item in items]})
        size = limit or MAX_PAGE_SIZE
        found = list(islice(select(after), size + 1))
        page = found[:size]
        next_page: Json | None = None
        if len(found) > size:
            token = self._offsets.encode(page[-1][0], query_hash)
            params = [
                (name, value)
                for name, values in request.args.lists()
                if name not in {"limit", "offset"}
                for value in values
            ]
            path = (
                request.path[len(API_BASE_PATH) :] + "?" + urlencode([*params, ("limit", str(size)), ("offset", token)])
            )
            next_page = {"offset": token, "path": path, "uri": self._server.root_url + API_BASE_PATH + path}
        return json_response({"data": [pick_fields(item, tree) for _, item in page], "next_page": next_page})

    @staticmethod
    def _after_gid(
        objects: Mapping[int, Json], keep: Callable[[int], bool] | None = None
    ) -> Callable[[list[int] | None], Iterator[tuple[list[int], Json]]]:
        def select(after: list[int] | None) -> Iterator[tuple[list[int], Json]]:
            floor = after[0] if after else -1
            for gid in sorted(objects):
                if gid > floor and (keep is None or keep(gid)):
                    yield [gid], objects[gid]

        return select

    def _lookup(self, objects: Mapping[int, object], gid: str | None, what: str) -> int:
        if gid is None or gid == "":
            raise ApiError(400, f"{what}: Missing input")
        try:
            key = int(gid)
        except ValueError:
            raise ApiError(400, f"{what}: Not a valid gid: {gid!r}") from None
        if key not in objects:
            raise ApiError(404, f"{what}: Unknown object: {gid}")
        return key

    # catalog endpoints ----------------------------------------------------------------------------

    def _get_user(self, request: Request) -> Response:
        wanted = request.params["user_gid"]
        gid = self._owner if wanted == "me" else self._lookup(self._users, wanted, "user")
        return json_response({"data": pick_fields(self._users[gid], self._fields(request, USER_FULL))})

    def _list_workspaces(self, request: Request) -> Response:
        return self._paged(request, self._after_gid(self._workspaces), self._fields(request, NAMED_COMPACT))

    def _list_workspace_users(self, request: Request) -> Response:
        self._lookup(self._workspaces, request.params["workspace_gid"], "workspace")
        return self._paged(request, self._after_gid(self._users), self._fields(request, NAMED_COMPACT))

    def _list_projects(self, request: Request) -> Response:
        workspace = request.arg("workspace")
        ws = None if workspace is None else self._lookup(self._workspaces, workspace, "workspace")
        # No project in the data set is archived, so asking for archived ones yields nothing.
        archived = request.arg("archived") == "true"

        def keep(gid: int) -> bool:
            return not archived and (ws is None or self._project_ws[gid] == ws)

        return self._paged(request, self._after_gid(self._projects, keep), self._fields(request, NAMED_COMPACT))

    def _get_project(self, request: Request) -> Response:
        gid = self._lookup(self._projects, request.params["project_gid"], "project")
        full = parse_tree(
            {
                "name",
                "archived",
                "color",
                "notes",
                "workspace.name",
                "custom_fields.name",
                "custom_fields.display_value",
                "custom_fields.type",
                "permalink_url",
            }
        )
        return json_response({"data": pick_fields(self._projects[gid], self._fields(request, full))})

    def _task_json(self, gid: int) -> Json:
        return {**self._tasks[gid], "actual_time_minutes": self._actual_minutes().get(gid, 0)}

    def _list_tasks(self, request: Request) -> Response:
        if request.arg("project") is None:
            raise ApiError(400, "project: Must specify exactly one of project, tag, or assignee + workspace")
        project = self._lookup(self._projects, request.arg("project"), "project")
        tasks = {gid: self._tasks[gid] for gid, p in self._task_project.items() if p == project}
        tree = self._fields(request, TASK_COMPACT)
        needs_actual = "actual_time_minutes" in tree
        objects = {gid: self._task_json(gid) for gid in tasks} if needs_actual else tasks
        return self._paged(request, self._after_gid(objects), tree)

    def _get_task(self, request: Request) -> Response:
        gid = self._lookup(self._tasks, request.params["task_gid"], "task")
        full = parse_tree(
            {
                "name",
                "resource_subtype",
                "created_by",
                "completed",
                "custom_fields.name",
                "custom_fields.display_value",
                "custom_fields.enum_value.name",
                "tags.name",
                "projects.name",
                "workspace.name",
                "permalink_url",
                "actual_time_minutes",
            }
        )
        return json_response({"data": pick_fields(self._task_json(gid), self._fields(request, full))})

    # time tracking endpoints ----------------------------------------------------------------------

    def _entry_json(self, record: _EntryRecord) -> Json:
        category = None if record.category is None else self._category_by_gid[record.category]
        task = self._tasks[record.task]
        return {
            "gid": str(record.gid),
            "resource_type": "time_tracking_entry",
            "duration_minutes": record.duration_minutes,
            "entered_on": record.entered_on.isoformat(),
            "attributable_to": self._ref(self._projects[record.project]),
            "created_by": self._ref(self._users[record.user]),
            "categories": [] if category is None else [category],
            "task": {key: task[key] for key in ("gid", "resource_type", "name", "resource_subtype", "created_by")},
            "created_at": _iso_instant(record.created_at),
            "approval_status": record.approval_status,
            "billable_status": record.billable_status,
            "description": record.description,
        }

    def _date_arg(self, request: Request, name: str) -> date | None:
        value = request.arg(name)
        if value is None or value == "":
            return None
        if not _DATE.match(value):
            raise ApiError(400, f"{name}: Invalid date value {value!r}, expected YYYY-MM-DD")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ApiError(400, f"{name}: Invalid date value {value!r}, expected YYYY-MM-DD") from None

    def _scan(
        self, start: date | None, end: date | None, keep: Callable[[_EntryRecord], bool]
    ) -> Callable[[list[int] | None], Iterator[tuple[list[int], Json]]]:
        order = self._order
        records = self._records
        low = bisect_left(order, (start.toordinal(), 0)) if start else 0
        last = end.toordinal() if end else date.max.toordinal()

        def select(after: list[int] | None) -> Iterator[tuple[list[int], Json]]:
            i = max(low, bisect_right(order, (after[0], after[1]))) if after else low
            while i < len(order):
                ordinal, gid = order[i]
                i += 1
                if ordinal > last:
                    return
                record = records[gid]
                if keep(record):
                    yield [ordinal, gid], self._entry_json(record)

        return select

    def _list_entries(self, request: Request) -> Response:
        start = self._date_arg(request, "entered_on_start_date")
        end = self._date_arg(request, "entered_on_end_date")
        checks: list[Callable[[_EntryRecord], bool]] = []
        workspace, task = request.arg("workspace"), request.arg("task")
        project, user = request.arg("attributable_to"), request.arg("user")
        if request.arg("portfolio") is not None:
            raise ApiError(404, f"portfolio: Unknown object: {request.arg('portfolio')}")
        if request.arg("timesheet_approval_status") is not None:
            raise ApiError(
                404, f"timesheet_approval_status: Unknown object: {request.arg('timesheet_approval_status')}"
            )
        if workspace is None and task is None and project is None and user is None:
            raise ApiError(400, "Must specify at least one of task, attributable_to, portfolio, user or workspace")
        if workspace is not None:
            ws = self._lookup(self._workspaces, workspace, "workspace")
            if start is None and end is None:
                raise ApiError(
                    400,
                    "entered_on_start_date: At least one of entered_on_start_date or entered_on_end_date "
                    "must be provided when filtering by workspace",
                )
            checks.append(lambda r: r.workspace == ws)
        if task is not None:
            task_gid = self._lookup(self._tasks, task, "task")
            checks.append(lambda r: r.task == task_gid)
        if project is not None:
            project_gid = self._lookup(self._projects, project, "attributable_to")
            checks.append(lambda r: r.project == project_gid)
        if user is not None:
            user_gid = self._owner if user == "me" else self._lookup(self._users, user, "user")
            checks.append(lambda r: r.user == user_gid)
        return self._paged(
            request, self._scan(start, end, lambda r: all(check(r) for check in checks)), self._list_fields(request)
        )

    def _list_task_entries(self, request: Request) -> Response:
        task_gid = self._lookup(self._tasks, request.params["task_gid"], "task")
        return self._paged(request, self._scan(None, None, lambda r: r.task == task_gid), self._list_fields(request))

    def _timesheets(self, ws: int) -> dict[tuple[int, date], Json]:
        """The timesheets (a user's week) of the workspace that hold entries, with their status."""
        found: dict[tuple[int, date], Json] = {}
        for _ordinal, gid in self._order:
            record = self._records[gid]
            if record.workspace != ws:
                continue
            key = (record.user, _monday(record.entered_on))
            if key in found:
                continue
            monday = key[1]
            found[key] = {
                # Stable per (workspace, user, week): the same timesheet keeps its gid across edits.
                "gid": str(
                    _TIMESHEET_BASE
                    + (ws - _WORKSPACE_BASE) * 10**11
                    + (record.user - _USER_BASE) * 10**7
                    + monday.toordinal()
                ),
                "resource_type": "timesheet_approval_status",
                "created_at": _iso_instant(datetime.combine(monday, time(0), tzinfo=UTC)),
                "user": self._ref(self._users[record.user]),
                "workspace": self._ref(self._workspaces[ws]),
                "start_date": monday.isoformat(),
                "end_date": (monday + timedelta(days=6)).isoformat(),
                "approval_status": record.approval_status,
            }
        return found

    def _list_timesheets(self, request: Request) -> Response:
        ws = self._lookup(self._workspaces, request.arg("workspace"), "workspace")
        user = request.arg("user")
        user_gid = None if user is None else self._owner if user == "me" else self._lookup(self._users, user, "user")
        start = self._date_arg(request, "from_date")
        end = self._date_arg(request, "to_date")
        wanted_text = request.arg("approval_statuses")
        wanted = None
        if wanted_text:
            wanted = {part.strip().upper() for part in wanted_text.split(",") if part.strip()}
            unknown = wanted - set(APPROVAL_STATUSES)
            if unknown:
                raise ApiError(400, f"approval_statuses: Unknown value: {sorted(unknown)[0].lower()}")
        sheets = {
            int(sheet["gid"]): sheet
            for (sheet_user, monday), sheet in self._timesheets(ws).items()
            if (user_gid is None or sheet_user == user_gid)
            # A week is listed when it overlaps [from_date, to_date].
            and (start is None or monday + timedelta(days=6) >= start)
            and (end is None or monday <= end)
            and (wanted is None or sheet["approval_status"] in wanted)
        }
        return self._paged(request, self._after_gid(sheets), self._fields(request, _TIMESHEET_COMPACT))

    def _get_entry(self, request: Request) -> Response:
        gid = self._lookup(self._records, request.params["time_tracking_entry_gid"], "time_tracking_entry")
        tree = self._fields(request, ENTRY_FULL)
        return json_response({"data": pick_fields(self._entry_json(self._records[gid]), tree)})


def _checked(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


_FULL_ONLY = parse_tree(
    {
        "task.name",
        "task.resource_subtype",
        "task.created_by",
        "created_at",
        "approval_status",
        "billable_status",
        "description",
    }
)
_TIMESHEET_COMPACT = parse_tree(
    {"created_at", "user.name", "workspace.name", "start_date", "end_date", "approval_status"}
)


def _within(day: date, start: date | None, end: date | None) -> bool:
    return (start is None or day >= start) and (end is None or day <= end)
