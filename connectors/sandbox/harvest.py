"""A local emulator of the Harvest API v2 read side hourbridge uses (users, time entries), serving a seeded data set."""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connectors.sandbox._http import Refused, Request, Response, json_response, refuse_unknown
from connectors.sandbox._middleware import Clock, Guard, RateLimit, RateLimiter
from connectors.sandbox._server import HostedSandbox, SandboxServer
from connectors.sandbox.dataset import Dataset

API_BASE_PATH = "/v2"
ACCOUNT_ID = "1234567"
ADMIN_TOKEN = "hvst_sandbox_admin"  # noqa: S105  (fake credentials the local emulator accepts)
MEMBER_TOKEN = "hvst_sandbox_member"  # noqa: S105
# Harvest: 100 requests per 15 seconds (https://www.mcpbundles.com/skills/harvest); answered with 429
# and Retry-After here (the v1 documentation said 503; unconfirmed for v2, both are retried).
RATE_LIMIT = 100
RATE_WINDOW_SECONDS = 15.0
MAX_PER_PAGE = 2000

USERS_ME = "users.me"
USERS_LIST = "users.list"
TIME_ENTRIES_LIST = "time_entries.list"
ROUTES = (USERS_ME, USERS_LIST, TIME_ENTRIES_LIST)

_USER_BASE = 3_100_001
_CLIENT_BASE = 8_200_001
_PROJECT_BASE = 14_300_001
_TASK_BASE = 9_400_001
_ENTRY_BASE = 1_600_000_001
_TIMER_ID = 1_699_999_999
_TIME_ENTRY_PARAMS = frozenset(
    {
        "user_id",
        "client_id",
        "project_id",
        "task_id",
        "external_reference_id",
        "is_billed",
        "is_running",
        "approval_status",
        "updated_since",
        "from",
        "to",
        "page",
        "per_page",
        "cursor",
    }
)

Json = dict[str, Any]


def harvest_error(status: int, message: str) -> Response:
    """An error as Harvest answers it: ``{"error": ..., "error_description": ...}`` (validation: ``message``)."""
    if status == 401:
        return json_response({"error": "invalid_token", "error_description": message}, status)
    if status == 422:
        return json_response({"message": message}, status)
    if status == 429:
        return json_response({"error": "too_many_requests", "error_description": "Rate limit exceeded"}, status)
    return json_response(
        {
            "error": {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(status, "error"),
            "error_description": message,
        },
        status,
    )


def _hours(minutes: int) -> float:
    # Harvest answers decimal hours; two places as its UI shows them (unconfirmed: more may come).
    return float((Decimal(minutes) / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(value: str, name: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise Refused(422, f"{name} must be a date formatted as YYYY-MM-DD") from None


@dataclass(slots=True)
class _Entry:
    id: int
    user: int
    payload: Json
    spent: date
    updated: datetime


class HarvestSandbox(HostedSandbox):
    """Harvest on 127.0.0.1: one account whose users are the data set's contractors.

    ``ADMIN_TOKEN`` belongs to the first contractor, an Administrator (sees everyone);
    ``MEMBER_TOKEN`` to the second, a Member (sees only their own time; ``/users`` is forbidden).
    Every request must carry ``Authorization: Bearer``, ``Harvest-Account-Id`` and a User-Agent;
    unknown query parameters and malformed dates are refused with 422 (the real service may ignore
    some: the stricter reading). Lists page by cursor in ``links.next`` (``page`` still works), at
    most 2,000 per page; at most 100 requests per 15 s per token, then 429 with ``Retry-After``.
    One running timer of the Administrator is always listed (``is_running: true``).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        token: str = ADMIN_TOKEN,
        member_token: str = MEMBER_TOKEN,
        account_id: str = ACCOUNT_ID,
        rate_limit: int | None = RATE_LIMIT,
        clock: Clock | None = None,
    ) -> None:
        self.dataset = dataset
        self._token = token
        self._account = account_id
        self._lock = threading.Lock()
        self._tokens = {token: _USER_BASE, member_token: _USER_BASE + 1}
        self._limiter = RateLimiter(rate_limit, clock=clock or time.monotonic, window=RATE_WINDOW_SECONDS)
        self._server = SandboxServer(
            base_path=API_BASE_PATH,
            error_factory=harvest_error,
            inner=(
                lambda app: Guard(app, self._authenticate),
                lambda app: RateLimit(app, self._limiter, harvest_error, self._token_of),
            ),
        )
        self._build()
        for method, rule, name, handler in (
            ("GET", "/users/me", USERS_ME, self._users_me),
            ("GET", "/users", USERS_LIST, self._users_list),
            ("GET", "/time_entries", TIME_ENTRIES_LIST, self._time_entries),
        ):
            self._server.route(method, rule, self._answer(handler), name=name)

    # -- data ------------------------------------------------------------------------------------

    def _build(self) -> None:
        ds = self.dataset
        created = datetime.combine(ds.start - timedelta(days=30), datetime.min.time(), tzinfo=UTC)
        self._users: dict[int, Json] = {}
        self._user_of: dict[str, int] = {}
        for person in ds.contractors:
            user_id = _USER_BASE + person.index
            self._user_of[person.id] = user_id
            first, _, last = person.name.partition(" ")
            roles = ["administrator"] if user_id == _USER_BASE else ["member"]
            self._users[user_id] = {
                "id": user_id,
                "first_name": first,
                "last_name": last,
                "email": person.email,
                "timezone": person.timezone,
                "is_contractor": True,
                "is_active": True,
                "access_roles": roles,
                "roles": [],
                "created_at": _stamp(created),
                "updated_at": _stamp(created),
            }
        self._entries: dict[int, _Entry] = {}
        for entry in ds.entries:
            project = ds.project(entry.project_id)
            client = ds.client(project.client_id)
            task = ds.task(entry.task_id)
            user_id = self._user_of[entry.person_id]
            user = self._users[user_id]
            entry_id = _ENTRY_BASE + entry.index
            self._entries[entry_id] = _Entry(
                entry_id,
                user_id,
                {
                    "id": entry_id,
                    "spent_date": entry.work_date.isoformat(),
                    "hours": _hours(entry.minutes),
                    "hours_without_timer": _hours(entry.minutes),
                    "rounded_hours": _hours(-(-entry.minutes // 15) * 15),
                    "notes": entry.description,
                    "is_locked": entry.approval_status == "APPROVED",
                    "locked_reason": None,
                    "approval_status": {"APPROVED": "approved", "SUBMITTED": "submitted"}.get(
                        entry.approval_status, "unsubmitted"
                    ),
                    "is_closed": False,
                    "is_billed": False,
                    "timer_started_at": None,
                    "started_time": None,
                    "ended_time": None,
                    "is_running": False,
                    "billable": entry.billable,
                    "budgeted": False,
                    "billable_rate": None,
                    "cost_rate": None,
                    "created_at": _stamp(entry.recorded_at),
                    "updated_at": _stamp(entry.recorded_at),
                    "user": {"id": user_id, "name": f"{user['first_name']} {user['last_name']}".strip()},
                    "client": {"id": _CLIENT_BASE + client.index, "name": client.name, "currency": "EUR"},
                    "project": {"id": _PROJECT_BASE + project.index, "name": project.name, "code": project.code},
                    "task": {"id": _TASK_BASE + task.index, "name": task.name},
                    "user_assignment": None,
                    "task_assignment": None,
                    "invoice": None,
                    "external_reference": None,
                },
                entry.work_date,
                entry.recorded_at,
            )
        first_project = ds.projects[0]
        timer_start = datetime.combine(ds.anchor, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9)
        timer = dict(next(iter(self._entries.values())).payload)
        timer.update(
            id=_TIMER_ID,
            spent_date=ds.anchor.isoformat(),
            hours=0.5,
            hours_without_timer=0.0,
            is_running=True,
            is_locked=False,
            timer_started_at=_stamp(timer_start),
            notes="Timer still running",
            user={
                "id": _USER_BASE,
                "name": f"{self._users[_USER_BASE]['first_name']} {self._users[_USER_BASE]['last_name']}",
            },
            project={"id": _PROJECT_BASE + first_project.index, "name": first_project.name, "code": first_project.code},
        )
        self._entries[_TIMER_ID] = _Entry(_TIMER_ID, _USER_BASE, timer, ds.anchor, timer_start)

    # -- controls --------------------------------------------------------------------------------

    @property
    def member_token(self) -> str:
        return next(t for t, user in self._tokens.items() if user == _USER_BASE + 1)

    @property
    def account_id(self) -> str:
        return self._account

    def user_id(self, contractor_id: str) -> int:
        return self._user_of[contractor_id]

    def entry_ids(self, start: date, end: date, *, user: int | None = None) -> set[int]:
        """Stopped entries dated ``start..end`` (of one user when given): what a full read returns."""
        with self._lock:
            return {
                e.id
                for e in self._entries.values()
                if start <= e.spent <= end and not e.payload["is_running"] and (user is None or e.user == user)
            }

    def delete_entry(self, entry_id: int) -> None:
        """Delete an entry: Harvest simply stops listing it."""
        with self._lock:
            del self._entries[entry_id]

    def edit_entry(self, entry_id: int, **fields: Any) -> None:
        with self._lock:
            entry = self._entries[entry_id]
            entry.payload.update(fields, updated_at=_stamp(datetime.now(UTC)))
            entry.updated = datetime.now(UTC)
            if "spent_date" in fields:
                entry.spent = date.fromisoformat(fields["spent_date"])

    def call_count(self, route: str | None = None) -> int:
        return self._server.call_count(route)

    # -- plumbing --------------------------------------------------------------------------------

    def _token_of(self, request: Request) -> str:
        return request.bearer_token or ""

    def _authenticate(self, request: Request) -> Response | None:
        # Harvest wants "App (contact)"; whether a bare name passes is unconfirmed, so it does not here.
        agent = request.headers.get("User-Agent", "")
        if not re.fullmatch(r"\S.*\(\S.*\)\s*", agent):
            message = 'A User-Agent naming the application and a contact is required, e.g. "MyApp (me@example.com)"'
            return json_response({"error": "bad_request", "error_description": message}, 400)
        token = request.bearer_token
        if token is None or token not in self._tokens:
            return harvest_error(
                401, "The access token provided is expired, revoked, malformed or invalid for other reasons."
            )
        account = request.headers.get("Harvest-Account-Id")
        if not account:
            return harvest_error(401, "Missing Harvest-Account-Id header")
        if account.strip() != self._account:
            return harvest_error(403, "The token's user does not belong to this account")
        return None

    def _answer(self, handler: Any) -> Any:
        def run(request: Request) -> Response:
            try:
                return json_response(handler(request, self._tokens[request.bearer_token or ""]))
            except Refused as exc:
                return harvest_error(exc.status, exc.message)

        return run

    def _user_json(self, user_id: int) -> Json:
        return dict(self._users[user_id])

    def _users_me(self, request: Request, me: int) -> Json:
        self._only(request, set())
        return self._user_json(me)

    def _users_list(self, request: Request, me: int) -> Json:
        self._only(request, {"page", "per_page", "cursor", "is_active", "updated_since"})
        if "administrator" not in self._users[me]["access_roles"]:
            raise Refused(403, "You do not have permission to list users")
        users = [self._user_json(user_id) for user_id in sorted(self._users)]
        return self._page(request, "users", users, {})

    def _time_entries(self, request: Request, me: int) -> Json:
        self._only(request, _TIME_ENTRY_PARAMS)
        filters = self._filters(request)
        admin = "administrator" in self._users[me]["access_roles"]
        wanted_user = filters.get("user_id")
        if not admin and wanted_user is not None and wanted_user != str(me):
            raise Refused(403, "You can only list your own time entries")
        start = _day(filters["from"], "from") if "from" in filters else None
        end = _day(filters["to"], "to") if "to" in filters else None
        since = None
        if "updated_since" in filters:
            try:
                since = datetime.fromisoformat(filters["updated_since"].replace("Z", "+00:00"))
            except ValueError:
                raise Refused(422, "updated_since must be an ISO 8601 date and time") from None
            if since.tzinfo is None:
                raise Refused(422, "updated_since must carry a UTC offset")
        running = filters.get("is_running")
        if running not in (None, "true", "false"):
            raise Refused(422, "is_running must be true or false")
        with self._lock:
            rows = [
                e
                for e in self._entries.values()
                if (admin or e.user == me)
                and (wanted_user is None or str(e.user) == wanted_user)
                and (start is None or e.spent >= start)
                and (end is None or e.spent <= end)
                and (since is None or e.updated >= since)
                and (running is None or e.payload["is_running"] == (running == "true"))
            ]
            # Harvest: newest spent_date first, then newest created.
            rows.sort(key=lambda e: (e.spent, e.id), reverse=True)
            payloads = [json.loads(json.dumps(e.payload)) for e in rows]
        return self._page(request, "time_entries", payloads, filters)

    def _only(self, request: Request, allowed: set[str] | frozenset[str]) -> None:
        refuse_unknown(request.args, allowed, "parameter", status=422)
        for name in request.args:
            if len(request.args.getlist(name)) > 1:
                raise Refused(422, f"Parameter {name} is given more than once")

    def _filters(self, request: Request) -> dict[str, str]:
        """The query's filters, or the ones its cursor carries (a cursor link holds no others)."""
        cursor = request.arg("cursor")
        if cursor is None:
            return {k: v for k, v in request.args.items() if k not in ("page", "per_page", "cursor")}
        state = self._cursor(cursor)
        extra = set(request.args) - {"cursor", "per_page"}
        if extra:
            raise Refused(422, f"A cursor carries the filters; do not repeat {', '.join(sorted(extra))}")
        return dict(state["filters"])

    def _cursor(self, cursor: str) -> Json:
        try:
            state = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        except (ValueError, binascii.Error):
            raise Refused(422, "The cursor is invalid") from None
        if not isinstance(state, dict) or not isinstance(state.get("offset"), int):
            raise Refused(422, "The cursor is invalid")
        return state

    def _page(self, request: Request, key: str, rows: list[Json], filters: dict[str, str]) -> Json:
        raw_per_page = request.arg("per_page") or str(MAX_PER_PAGE)
        try:
            per_page = int(raw_per_page)
        except ValueError:
            raise Refused(422, "per_page must be an integer") from None
        if not 1 <= per_page <= MAX_PER_PAGE:
            raise Refused(422, f"per_page must be between 1 and {MAX_PER_PAGE}")
        cursor = request.arg("cursor")
        if cursor is not None:
            offset = self._cursor(cursor)["offset"]
        else:
            try:
                page_number = int(request.arg("page") or "1")
            except ValueError:
                raise Refused(422, "page must be an integer") from None
            if page_number < 1:
                raise Refused(422, "page must be at least 1")
            offset = (page_number - 1) * per_page
        total = len(rows)
        total_pages = max(1, -(-total // per_page))
        page = offset // per_page + 1
        chunk = rows[offset : offset + per_page]
        has_next = offset + per_page < total
        base = f"{self.base_url}{request.path[len(API_BASE_PATH) :]}"

        def link(at: int) -> str:
            token = base64.urlsafe_b64encode(json.dumps({"filters": filters, "offset": at}).encode()).decode()
            return f"{base}?cursor={token}&per_page={per_page}"

        return {
            key: chunk,
            "per_page": per_page,
            "total_pages": total_pages,
            "total_entries": total,
            "next_page": page + 1 if has_next else None,
            "previous_page": page - 1 if page > 1 else None,
            "page": page,
            "links": {
                "first": link(0),
                "next": link(offset + per_page) if has_next else None,
                "previous": link(max(0, offset - per_page)) if offset > 0 else None,
                "last": link((total_pages - 1) * per_page),
            },
        }


def serve_harvest(dataset: Dataset, **options: Any) -> HarvestSandbox:
    """Start a Harvest emulator on 127.0.0.1 (stop it with ``.stop()``); what ``hourbridge sandbox`` wires in."""
    return HarvestSandbox(dataset, **options).start()
