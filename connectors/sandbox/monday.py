"""A local emulator of the monday.com GraphQL API's time-tracking read side, validated by graphql-core."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from graphql import (
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    SelectionSetNode,
    build_schema,
    execute_sync,
    parse,
    validate,
)

from connectors.sandbox._http import Request, Response, json_response
from connectors.sandbox._middleware import Clock
from connectors.sandbox._server import HostedSandbox, SandboxServer
from connectors.sandbox.dataset import Dataset

API_BASE_PATH = "/v2"
DEFAULT_TOKEN = "sandbox-monday-token"  # noqa: S105  (a fake credential the local emulator accepts)
MAX_PAGE_SIZE = 500
CURSOR_LIFETIME_SECONDS = 3600.0
BUDGET_WINDOW_SECONDS = 60.0
ACCOUNT_ID = "31000001"

# Route names, for ``fail_next`` and ``call_count``. GRAPHQL is the one HTTP route; the others
# name the root operation a request performs (a query may perform several).
GRAPHQL = "graphql"
BOARDS = "boards"
ITEMS_PAGE = "items_page"
NEXT_ITEMS_PAGE = "next_items_page"
USERS = "users"
ACCOUNT = "account"
ME = "me"
OPERATIONS = (BOARDS, ITEMS_PAGE, NEXT_ITEMS_PAGE, USERS, ACCOUNT, ME)
# Codes ``fail_next`` puts inside a 200 besides the default: a passing internal failure.
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"

# The served part of the official schema (API version 2026-10): names, arguments, defaults,
# nullability and types exactly as there, so a query this rejects the real API rejects too.
SCHEMA_SDL = """
scalar Date
scalar JSON

enum ColumnType { dropdown numbers status text time_tracking }
enum State { active all archived deleted }

type Query {
  account: Account
  boards(ids: [ID!], limit: Int = 25, page: Int = 1, state: State = active): [Board]
  complexity: Complexity
  me: User
  next_items_page(cursor: String!, limit: Int! = 25): ItemsResponse!
  users(ids: [ID!], limit: Int = 200, page: Int = 1): [User!]
}

type Account { id: ID! name: String! slug: String! }

type Board {
  id: ID!
  name: String!
  columns(ids: [String], types: [ColumnType!]): [Column]
  groups(ids: [String]): [Group]
  items_page(cursor: String, limit: Int! = 25): ItemsResponse!
}

type Column { id: ID! title: String! type: ColumnType! }
type Group { id: ID! title: String! }

type Item {
  id: ID!
  name: String!
  group: Group
  updated_at: Date
  column_values(ids: [String!], types: [ColumnType!]): [ColumnValue!]!
}

type ItemsResponse { cursor: String items: [Item!]! }

interface ColumnValue { column: Column! id: ID! text: String type: ColumnType! value: JSON }

type TextValue implements ColumnValue { column: Column! id: ID! text: String type: ColumnType! value: JSON }

type StatusValue implements ColumnValue {
  column: Column! id: ID! label: String text: String type: ColumnType! value: JSON
}

type TimeTrackingValue implements ColumnValue {
  column: Column!
  duration: Int
  history: [TimeTrackingHistoryItem!]!
  id: ID!
  running: Boolean
  started_at: Date
  text: String
  type: ColumnType!
  updated_at: Date
  value: JSON
}

type TimeTrackingHistoryItem {
  created_at: Date!
  ended_at: Date
  ended_user_id: ID
  id: ID!
  manually_entered_end_date: Boolean!
  manually_entered_end_time: Boolean!
  manually_entered_start_date: Boolean!
  manually_entered_start_time: Boolean!
  started_at: Date
  started_user_id: ID
  status: String!
  updated_at: Date
}

type User { id: ID! name: String! email: String! time_zone_identifier: String }

type Complexity { after: Int! before: Int! query: Int! reset_in_x_seconds: Int! }
"""

SCHEMA = build_schema(SCHEMA_SDL)

_BOARD_BASE = 1800000001
_ITEM_BASE = 1900000001
_SESSION_BASE = 700000001
_USER_BASE = 50000001
CODE_COLUMN = {"id": "text_code", "title": "Project code", "type": "text"}
CATEGORY_COLUMN = {"id": "status_category", "title": "Category", "type": "status"}
TIME_COLUMN = {"id": "time_tracking", "title": "Time tracking", "type": "time_tracking"}

Json = dict[str, Any]
Info = Any  # graphql-core's resolve info; resolvers here never read it


def monday_error(status: int, message: str) -> Response:
    """An error body in monday's GraphQL shape, for HTTP-level failures (auth, 429, faults)."""
    if status == 429:
        message = "Rate Limit Exceeded"
    elif status == 401:
        message = "Not Authenticated"
    return json_response({"errors": [{"message": message, "extensions": {"status_code": status}}]}, status)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class _Session:
    id: int
    item: int
    user: int
    started_at: datetime
    ended_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @property
    def minutes(self) -> int:
        return 0 if self.ended_at is None else int((self.ended_at - self.started_at).total_seconds()) // 60


@dataclass(slots=True)
class _Item:
    id: int
    board: int
    name: str
    group: str
    code: str | None
    category: str
    sessions: list[int]


@dataclass(slots=True)
class _Fault:
    remaining: int
    status: int
    headers: dict[str, str]
    code: str
    message: str
    retry_in_seconds: int | None


class _Complexity:
    """monday's per-minute complexity budget: the window opens on the first call and resets 60 s later."""

    def __init__(self, budget: int, clock: Clock) -> None:
        self.budget = budget
        self._clock = clock
        self._opened: float | None = None
        self._used = 0

    def reset_in(self) -> int:
        if self._opened is None:
            return int(BUDGET_WINDOW_SECONDS)
        return max(1, math.ceil(self._opened + BUDGET_WINDOW_SECONDS - self._clock()))

    def spend(self, cost: int) -> tuple[int, int] | None:
        """(before, after) when the query fits; ``None`` when the budget is exhausted."""
        now = self._clock()
        if self._opened is None or now >= self._opened + BUDGET_WINDOW_SECONDS:
            self._opened, self._used = now, 0
        before = self.budget - self._used
        if cost > before:
            return None
        self._used += cost
        return before, before - cost


def _cost(selection: SelectionSetNode | None, multiplier: int, variables: Mapping[str, Any]) -> int:
    """A deterministic stand-in for monday's cost: each field costs its list multiplier.

    A field with a ``limit`` (or ``ids``) argument multiplies the cost of what it selects, which is
    the shape of monday's own formula (nested lists are what make queries expensive).
    """
    if selection is None:
        return 0
    total = 0
    for node in selection.selections:
        inner = multiplier
        if isinstance(node, FieldNode):
            total += multiplier
            for argument in node.arguments or ():
                if argument.name.value not in ("limit", "ids"):
                    continue
                value = argument.value
                raw: Any
                if value.kind == "variable":
                    raw = variables.get(getattr(value, "name").value)  # noqa: B009  (typed as ValueNode)
                elif value.kind == "int_value":
                    raw = int(getattr(value, "value"))  # noqa: B009
                elif value.kind == "list_value":
                    raw = list(getattr(value, "values"))  # noqa: B009
                else:
                    raw = None
                count = len(raw) if isinstance(raw, list) else raw if isinstance(raw, int) else 1
                inner = multiplier * max(1, count)
        total += _cost(getattr(node, "selection_set", None), inner, variables)
    return total


class MondaySandbox(HostedSandbox):
    """monday.com on 127.0.0.1: boards, groups, items with time tracking history, users, with controls.

    Each data-set project becomes a board (board name = project name), each task category a group,
    each task an item with a "Project code" text column (when the task has a code), a "Category"
    status column and a "Time tracking" column whose history holds one session per data-set entry of
    that task. One extra session on the first item is still running (no ``ended_at``).
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        token: str = DEFAULT_TOKEN,
        projects: Collection[str] | None = None,
        complexity_budget: int = 10_000_000,
        clock: Clock | None = None,
        errors_as_http_200: bool = True,
    ) -> None:
        self.dataset = dataset
        self._token = token
        self._clock: Clock = clock or time.monotonic
        self._errors_as_http_200 = errors_as_http_200
        self._lock = threading.RLock()
        self._secret = os.urandom(32)
        self._cursor_generation = 0
        self._complexity = _Complexity(complexity_budget, self._clock)
        self._faults: dict[str, deque[_Fault]] = {}
        self._op_counts = dict.fromkeys(OPERATIONS, 0)
        self._server = SandboxServer(
            base_path=API_BASE_PATH,
            clock=self._clock,
            rate_limit_key=lambda request: request.headers.get("authorization", ""),
            error_factory=monday_error,
        )
        self._server.route("POST", "/", self._handle, name=GRAPHQL)
        self._build(projects)

    # -- data --------------------------------------------------------------------------------------

    def _build(self, projects: Collection[str] | None) -> None:
        ds = self.dataset
        wanted = set(projects) if projects is not None else None
        self._users: dict[int, Json] = {}
        self._user_by_contractor: dict[str, int] = {}
        for person in ds.contractors:
            uid = _USER_BASE + person.index
            self._user_by_contractor[person.id] = uid
            self._users[uid] = {
                "id": str(uid),
                "name": person.name,
                "email": person.email,
                "time_zone_identifier": person.timezone,
            }
        self._boards: dict[int, Json] = {}
        self._board_items: dict[int, list[int]] = {}
        self._items: dict[int, _Item] = {}
        item_by_task: dict[str, int] = {}
        for project in ds.projects:
            if wanted is not None and project.id not in wanted:
                continue
            bid = _BOARD_BASE + project.index
            self._boards[bid] = {"id": str(bid), "name": project.name}
            self._board_items[bid] = []
        for task in ds.tasks:
            bid = _BOARD_BASE + ds.project(task.project_id).index
            if bid not in self._boards:
                continue
            iid = _ITEM_BASE + task.index
            item_by_task[task.id] = iid
            self._items[iid] = _Item(iid, bid, task.name, task.category, task.code, task.category, [])
            self._board_items[bid].append(iid)
        self._sessions: dict[int, _Session] = {}
        for entry in ds.entries:
            owner = item_by_task.get(entry.task_id)
            if owner is None:
                continue
            sid = _SESSION_BASE + entry.index
            self._sessions[sid] = _Session(
                sid,
                owner,
                self._user_by_contractor[entry.person_id],
                entry.started_at,
                entry.ended_at,
                entry.started_at,
                entry.recorded_at,
            )
            self._items[owner].sessions.append(sid)
        if self._items and ds.contractors:
            # A timer somebody left running: no ended_at, so it is no billable time yet.
            first = min(self._items)
            sid = _SESSION_BASE + len(ds.entries)
            started = datetime.combine(ds.anchor, datetime.min.time(), tzinfo=UTC) + timedelta(hours=10)
            user = self._user_by_contractor[ds.contractors[0].id]
            self._sessions[sid] = _Session(sid, first, user, started, None, started, started)
            self._items[first].sessions.append(sid)
            self.running_session_id = f"{first}:{sid}"

    # -- lifecycle ---------------------------------------------------------------------------------

    # -- controls ----------------------------------------------------------------------------------

    def board_ids(self) -> list[str]:
        return [str(b) for b in sorted(self._boards)]

    def items_of(self, board_id: str) -> int:
        return len(self._board_items[int(board_id)])

    def session_ids(self, start: date | None = None, end: date | None = None, *, timezone: str = "UTC") -> list[str]:
        """Stopped sessions ("<item>:<session>") whose start falls on a day in ``[start, end]`` in ``timezone``."""
        zone = ZoneInfo(timezone)
        with self._lock:
            return [
                f"{s.item}:{s.id}"
                for s in sorted(self._sessions.values(), key=lambda s: s.id)
                if s.ended_at is not None and _within(s.started_at.astimezone(zone).date(), start, end)
            ]

    def total_minutes(self, start: date | None = None, end: date | None = None, *, timezone: str = "UTC") -> int:
        zone = ZoneInfo(timezone)
        with self._lock:
            return sum(
                s.minutes
                for s in self._sessions.values()
                if s.ended_at is not None and _within(s.started_at.astimezone(zone).date(), start, end)
            )

    def _session(self, key: str) -> _Session:
        _, _, sid = key.rpartition(":")
        return self._sessions[int(sid)]

    def edit_session(self, key: str, *, minutes: int | None = None, started_at: datetime | None = None) -> None:
        """Change a session's start and/or length (``key`` as "<item>:<session>" or the bare session id)."""
        with self._lock:
            session = self._session(key)
            length = timedelta(minutes=minutes) if minutes is not None else None
            if started_at is not None:
                length = length or (session.ended_at - session.started_at if session.ended_at else None)
                session.started_at = started_at.astimezone(UTC)
            if length is not None:
                session.ended_at = session.started_at + length
            session.updated_at = max(session.updated_at, session.started_at)

    def delete_session(self, key: str) -> None:
        with self._lock:
            session = self._sessions.pop(self._session(key).id)
            self._items[session.item].sessions.remove(session.id)

    def expire_cursors(self) -> None:
        """Make every cursor handed out so far invalid, as monday does after about 60 minutes."""
        with self._lock:
            self._cursor_generation += 1

    def fail_next(
        self,
        name: str,
        n: int,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        *,
        code: str = "COMPLEXITY_BUDGET_EXHAUSTED",
        message: str | None = None,
        retry_in_seconds: int | None = None,
    ) -> None:
        """Answer the next ``n`` requests performing ``name`` with an error.

        ``status`` 200 puts a GraphQL error with ``code`` inside a 200 (monday's usual way); any other
        status answers with that status and ``headers``. ``GRAPHQL`` fails whatever comes next.
        """
        if name != GRAPHQL and name not in OPERATIONS:
            raise KeyError(f"unknown route {name!r} (known: {', '.join((GRAPHQL, *OPERATIONS))})")
        if n < 1:
            raise ValueError("n must be at least 1")
        text = message or f"{code}: injected fault"
        with self._lock:
            self._faults.setdefault(name, deque()).append(
                _Fault(n, status, dict(headers or {}), code, text, retry_in_seconds)
            )

    def call_count(self, name: str | None = None) -> int:
        """HTTP requests (``None`` or ``GRAPHQL``) or requests performing one operation."""
        if name is None or name == GRAPHQL:
            return self._server.call_count(GRAPHQL)
        with self._lock:
            return self._op_counts[name]

    def reset_counts(self) -> None:
        self._server.reset_counts()
        with self._lock:
            self._op_counts = dict.fromkeys(OPERATIONS, 0)

    # -- GraphQL -----------------------------------------------------------------------------------

    def _graphql_errors(
        self, errors: list[Json], status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        return json_response({"errors": errors, "account_id": int(ACCOUNT_ID)}, status, headers)

    def _handle(self, request: Request) -> Response:
        if request.headers.get("authorization", "").strip() != self._token:
            return monday_error(401, "Not Authenticated")
        try:
            payload = request.json_body()
        except ValueError:
            return self._graphql_errors([{"message": "Invalid JSON body"}])
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return self._graphql_errors([{"message": "No query string was present"}])
        variables = payload.get("variables") or {}
        try:
            document = parse(payload["query"])
        except GraphQLError as error:
            return self._graphql_errors([{**error.formatted, "extensions": {"code": "GRAPHQL_PARSE_FAILED"}}])
        problems = validate(SCHEMA, document)
        if problems:
            return self._graphql_errors(
                [{**e.formatted, "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"}} for e in problems]
            )
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if len(operations) != 1 or operations[0].operation.value != "query":
            return self._graphql_errors([{"message": "The sandbox serves exactly one query operation per request"}])
        operation = operations[0]
        performed = self._classify(operation.selection_set)
        with self._lock:
            for name in performed:
                self._op_counts[name] += 1
            fault = self._take_fault([*performed, GRAPHQL])
            if fault is not None:
                return self._fault_response(fault)
            cost = max(1, _cost(operation.selection_set, 1, variables))
            spent = self._complexity.spend(cost)
            reset_in = self._complexity.reset_in()
            if spent is None:
                return self._budget_exhausted(cost, reset_in)
            before, after = spent
            root = self._root({"before": before, "after": after, "query": cost, "reset_in_x_seconds": reset_in})
            result = execute_sync(SCHEMA, document, root_value=root, variable_values=variables)
        body: Json = {"data": result.data, "account_id": int(ACCOUNT_ID)}
        if result.errors:
            body["errors"] = [e.formatted for e in result.errors]
        return json_response(body)

    @staticmethod
    def _classify(selection: SelectionSetNode) -> list[str]:
        performed: list[str] = []
        for node in selection.selections:
            if not isinstance(node, FieldNode):
                continue
            name = node.name.value
            if name == "boards":
                inner = {
                    n.name.value
                    for n in (node.selection_set.selections if node.selection_set else ())
                    if isinstance(n, FieldNode)
                }
                performed.append(ITEMS_PAGE if "items_page" in inner else BOARDS)
            elif name in OPERATIONS:
                performed.append(name)
        return performed

    def _take_fault(self, names: list[str]) -> _Fault | None:
        for name in names:
            queue = self._faults.get(name)
            if queue:
                fault = queue[0]
                fault.remaining -= 1
                if fault.remaining <= 0:
                    queue.popleft()
                return fault
        return None

    def _fault_response(self, fault: _Fault) -> Response:
        error: Json = {"message": fault.message, "extensions": {"code": fault.code}}
        if fault.code == INTERNAL_SERVER_ERROR:
            # monday: an internal failure inside a 200 carries the status it stands for.
            error["extensions"]["status_code"] = 500
        if fault.retry_in_seconds is not None:
            error["extensions"]["retry_in_seconds"] = fault.retry_in_seconds
        return self._graphql_errors([error], fault.status, fault.headers)

    def _budget_exhausted(self, cost: int, reset_in: int) -> Response:
        remaining = self._complexity.budget - self._complexity._used
        error = {
            "message": (
                f"Complexity budget exhausted, query cost {cost} budget remaining {remaining} out of "
                f"{self._complexity.budget} reset in {reset_in} seconds"
            ),
            "extensions": {
                "code": "COMPLEXITY_BUDGET_EXHAUSTED",
                "complexity": cost,
                "maxComplexity": self._complexity.budget,
                "reset_in_x_seconds": reset_in,
                "retry_in_seconds": reset_in,
            },
        }
        if self._errors_as_http_200:
            return self._graphql_errors([error])
        return self._graphql_errors([error], 429, {"Retry-After": str(reset_in)})

    # resolvers -------------------------------------------------------------------------------------

    def _root(self, complexity: Json) -> Json:
        return {
            "complexity": complexity,
            "account": {"id": ACCOUNT_ID, "name": "Example Consulting", "slug": "example-consulting"},
            "me": self._users[min(self._users)] if self._users else None,
            "boards": self._resolve_boards,
            "users": self._resolve_users,
            "next_items_page": self._resolve_next_page,
        }

    def _resolve_boards(
        self,
        _info: Info,
        ids: list[str] | None = None,
        limit: int = 25,
        page: int = 1,
        state: str = "active",
    ) -> list[Json]:
        chosen = (
            sorted(self._boards) if ids is None else [int(i) for i in ids if i.isdigit() and int(i) in self._boards]
        )
        if state in ("archived", "deleted"):
            chosen = []  # no board of the data set is archived or deleted
        window = chosen[(page - 1) * limit : page * limit] if limit > 0 else []
        return [self._board_json(bid) for bid in window]

    def _board_json(self, bid: int) -> Json:
        board = self._boards[bid]
        groups = sorted({self._items[i].group for i in self._board_items[bid]})
        columns = [TIME_COLUMN, CODE_COLUMN, CATEGORY_COLUMN]

        def resolve_columns(_info: Info, ids: list[str] | None = None, types: list[str] | None = None) -> list[Json]:
            return [c for c in columns if (ids is None or c["id"] in ids) and (types is None or c["type"] in types)]

        def resolve_groups(_info: Info, ids: list[str] | None = None) -> list[Json]:
            return [_group_json(g) for g in groups if ids is None or _group_id(g) in ids]

        def items_page(_info: Info, limit: int = 25, cursor: str | None = None) -> Json:
            after = -1 if cursor is None else self._decode_cursor(cursor, bid)
            return self._page(bid, after, limit)

        return {**board, "columns": resolve_columns, "groups": resolve_groups, "items_page": items_page}

    def _resolve_next_page(self, _info: Info, cursor: str, limit: int = 25) -> Json:
        board, after = self._decode_any_cursor(cursor)
        return self._page(board, after, limit)

    def _resolve_users(self, _info: Info, ids: list[str] | None = None, limit: int = 200, page: int = 1) -> list[Json]:
        chosen = sorted(self._users) if ids is None else [int(i) for i in ids if i.isdigit() and int(i) in self._users]
        return [self._users[u] for u in chosen[(page - 1) * limit : page * limit]]

    def _page(self, board: int, after: int, limit: int) -> Json:
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise GraphQLError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
        remaining = [i for i in self._board_items[board] if i > after]
        page = remaining[:limit]
        cursor = self._encode_cursor(board, page[-1]) if len(remaining) > limit else None
        return {"cursor": cursor, "items": [self._item_json(i) for i in page]}

    def _item_json(self, iid: int) -> Json:
        item = self._items[iid]
        sessions = [self._sessions[s] for s in item.sessions]

        def column_values(_info: Info, ids: list[str] | None = None, types: list[str] | None = None) -> list[Json]:
            values: list[Json] = [
                {
                    "__typename": "TimeTrackingValue",
                    "column": TIME_COLUMN,
                    "id": TIME_COLUMN["id"],
                    "type": "time_tracking",
                    "text": None,
                    "value": None,
                    "duration": sum(s.minutes * 60 for s in sessions),
                    "running": any(s.ended_at is None for s in sessions),
                    "started_at": next((_iso(s.started_at) for s in sessions if s.ended_at is None), None),
                    "updated_at": _iso(max((s.updated_at for s in sessions), default=datetime(2000, 1, 1, tzinfo=UTC))),
                    "history": [_session_json(s) for s in sessions],
                },
                {
                    "__typename": "TextValue",
                    "column": CODE_COLUMN,
                    "id": CODE_COLUMN["id"],
                    "type": "text",
                    "text": item.code or "",
                    "value": None if item.code is None else json.dumps(item.code),
                },
                {
                    "__typename": "StatusValue",
                    "column": CATEGORY_COLUMN,
                    "id": CATEGORY_COLUMN["id"],
                    "type": "status",
                    "text": item.category,
                    "label": item.category,
                    "value": json.dumps({"label": item.category}),
                },
            ]
            return [v for v in values if (ids is None or v["id"] in ids) and (types is None or v["type"] in types)]

        return {
            "id": str(iid),
            "name": item.name,
            "group": _group_json(item.group),
            "updated_at": None,
            "column_values": column_values,
        }

    # cursors -----------------------------------------------------------------------------------------

    def _sign(self, payload: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._secret, payload, hashlib.sha256).digest()[:18]).decode()

    def _encode_cursor(self, board: int, after: int) -> str:
        payload = json.dumps([board, after, self._clock(), self._cursor_generation]).encode()
        return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + self._sign(payload)

    def _decode_any_cursor(self, cursor: str) -> tuple[int, int]:
        body, _, signature = cursor.partition(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            board, after, issued, generation = json.loads(payload)
        except (ValueError, TypeError):
            raise _cursor_error("The cursor provided for pagination is invalid") from None
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise _cursor_error("The cursor provided for pagination is invalid")
        if generation != self._cursor_generation or self._clock() - issued > CURSOR_LIFETIME_SECONDS:
            raise _cursor_error("The cursor provided for pagination has expired. Please use a new cursor")
        return int(board), int(after)

    def _decode_cursor(self, cursor: str, board: int) -> int:
        owner, after = self._decode_any_cursor(cursor)
        if owner != board:
            raise _cursor_error("The cursor provided for pagination is invalid")
        return after


def _cursor_error(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "CursorExpiredError", "status_code": 200})


def _group_id(title: str) -> str:
    return title.lower().replace(" ", "_")


def _group_json(title: str) -> Json:
    return {"id": _group_id(title), "title": title}


def _session_json(session: _Session) -> Json:
    return {
        "id": str(session.id),
        "created_at": _iso(session.created_at),
        "started_at": _iso(session.started_at),
        "ended_at": None if session.ended_at is None else _iso(session.ended_at),
        "started_user_id": str(session.user),
        "ended_user_id": None if session.ended_at is None else str(session.user),
        "manually_entered_start_date": False,
        "manually_entered_start_time": False,
        "manually_entered_end_date": False,
        "manually_entered_end_time": False,
        "status": "active",
        "updated_at": _iso(session.updated_at),
    }


def _within(day: date, start: date | None, end: date | None) -> bool:
    return (start is None or day >= start) and (end is None or day <= end)
