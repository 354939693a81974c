"""MondaySource: time-tracking sessions from monday.com boards, paced by the complexity budget."""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from connectors._config import require_token
from connectors._http import (
    CallStats,
    RateLimiter,
    RetryPolicy,
    Sleep,
    limiter_for,
    make_client,
    redact,
    send,
)
from connectors.errors import (
    Action,
    ConfigError,
    HourbridgeError,
    PayloadError,
    RequestBugError,
    TransientError,
)
from connectors.model import Scope, TimeEntry, Window
from connectors.monday.config import ENV_PREFIX, MondayConfig
from connectors.monday.normalize import normalize_session, session_key
from connectors.monday.schema import (
    MondayAccount,
    MondayBoard,
    MondayComplexity,
    MondayItem,
    MondayItemsPage,
    MondayUser,
)

log = structlog.get_logger("hourbridge.monday")

VENDOR = "monday.com"
SETTING_TOKEN = f"{ENV_PREFIX}TOKEN"
SETTING_BOARDS = f"{ENV_PREFIX}BOARD_IDS"
# monday: 5,000 requests a minute per token is the documented request cap; the complexity budget is
# what actually binds, and it is paced separately from the answers' ``complexity`` block.
REQUESTS_PER_MINUTE = 5000
BOARDS_PER_PAGE = 100
USERS_PER_CALL = 200
# Sessions held back, at most, while the people they name wait to be looked up together (about
# 1 kB each as parsed models, so about 100 MB): beyond this the people seen so far are looked up at
# once, even fewer than a full call. People tend to work on some boards only, so a smaller hold
# would let a person first met on a later board cost one more call.
HOLD_SESSIONS = 100_000
MAX_PAGES = 100_000
MAX_CURSOR_RESTARTS = 3
# monday: the daily call cap resets at midnight UTC; the job is rescheduled, never held that long.
DAILY_RETRY_CAP_SECONDS = 24 * 3600.0

COMPLEXITY = "complexity { before after query reset_in_x_seconds }"
CHECK_QUERY = f"query {{ {COMPLEXITY} me {{ id }} account {{ id name }} }}"
BOARDS_QUERY = (
    "query ($ids: [ID!], $limit: Int, $page: Int) { "
    f"{COMPLEXITY} "
    "boards(ids: $ids, limit: $limit, page: $page, state: active) { id name columns(types: [time_tracking]) { id } } }"
)
USERS_QUERY = (
    f"query ($ids: [ID!], $limit: Int) {{ {COMPLEXITY} users(ids: $ids, limit: $limit) "
    "{ id name email time_zone_identifier } }"
)
SESSION_FIELDS = "id started_at ended_at started_user_id created_at"

_NON_ALNUM = re.compile(r"[^a-z0-9]")
_SECONDS_IN_MESSAGE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:seconds?|secs?|s)\b", re.IGNORECASE)


def _items_selection(field_types: list[str]) -> str:
    # Only the time tracking column carries history; the other columns are asked for by type, with
    # just what a mapping key needs (title and text), to keep each page's complexity cost small.
    fields = ""
    if field_types:
        fields = f" fields: column_values(types: [{', '.join(field_types)}]) {{ id type text column {{ title }} }}"
    return (
        "cursor items { id name group { id title } "
        "time_tracking: column_values(types: [time_tracking]) "
        f"{{ id ... on TimeTrackingValue {{ history {{ {SESSION_FIELDS} }} }} }}"
        f"{fields} }}"
    )


class DailyLimitError(HourbridgeError):
    """monday's daily call cap is spent; the job should run again after midnight UTC.

    Not a ``TransientError`` on purpose: per-request retries would burn calls that count against the
    same cap (failed calls count too). The runner reads ``action`` and ``retry_after`` and reschedules.
    """

    action = Action.TRANSIENT

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _CursorExpired(HourbridgeError):
    """A page cursor monday no longer accepts (they live about 60 minutes); the board is re-paged."""


@dataclass(slots=True)
class _BoardPaging:
    """Where one board's paging stands (mutated only by the thread that holds its page request)."""

    board: MondayBoard
    cursor: str | None = None
    started: bool = False
    done: bool = False
    restarts: int = 0
    cursors: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class _Page:
    paging: _BoardPaging
    items: list[MondayItem]
    people: frozenset[str]  # the user ids its sessions name
    sessions: int


@dataclass(slots=True)
class _Held:
    """Pages in arrival order, held while people they name are not looked up yet."""

    pages: deque[_Page] = field(default_factory=deque)
    sessions: int = 0

    def add(self, page: _Page) -> None:
        self.pages.append(page)
        self.sessions += page.sessions


def _norm(text: str) -> str:
    """Error codes come as COMPLEXITY_BUDGET_EXHAUSTED or complexityBudgetExhausted: compare folded."""
    return _NON_ALNUM.sub("", text.lower())


def _errors_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        return [e if isinstance(e, dict) else {"message": str(e)} for e in errors]
    # Older API versions answered with a flat {error_code, error_message, status_code} body.
    if body.get("error_code") or body.get("error_message"):
        return [
            {
                "message": str(body.get("error_message") or body.get("error_code")),
                "extensions": {"code": body.get("error_code"), **(body.get("error_data") or {})},
                "retry_in_seconds": body.get("retry_in_seconds"),
            }
        ]
    return []


def _extensions(error: dict[str, Any]) -> dict[str, Any]:
    value = error.get("extensions")
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return max(0.0, float(value))
    if isinstance(value, str):
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def _retry_seconds(error: dict[str, Any], body: dict[str, Any]) -> float | None:
    """Where monday says how long to wait is unconfirmed: look in every place it has been seen."""
    extensions = _extensions(error)
    for value in (
        extensions.get("retry_in_seconds"),
        error.get("retry_in_seconds"),
        body.get("retry_in_seconds"),
    ):
        seconds = _number(value)
        if seconds is not None:
            return seconds
    found = _SECONDS_IN_MESSAGE.search(str(error.get("message") or ""))
    if found:
        return float(found.group(1))
    seconds = _number(extensions.get("reset_in_x_seconds"))
    if seconds is not None:
        return seconds
    data = body.get("data")
    complexity = data.get("complexity") if isinstance(data, dict) else None
    return _number(complexity.get("reset_in_x_seconds")) if isinstance(complexity, dict) else None


def _seconds_to_midnight_utc() -> float:
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return min(DAILY_RETRY_CAP_SECONDS, max(60.0, (midnight - now).total_seconds()))


def classify_graphql_errors(errors: list[dict[str, Any]], body: dict[str, Any]) -> HourbridgeError:
    """The error to raise for a GraphQL ``errors`` list (monday puts most failures inside a 200)."""
    for error in errors:
        extensions = _extensions(error)
        code = _norm(str(extensions.get("code") or error.get("code") or error.get("error_code") or ""))
        message = str(error.get("message") or "")
        folded = _norm(message)
        text = redact(message)[:300]
        if "complexitybudgetexhausted" in code or "complexitybudgetexhausted" in folded:
            # Counted as a throttle (status 429) although it may come inside a 200.
            return TransientError(
                f"{VENDOR} complexity budget exhausted: {text}", retry_after=_retry_seconds(error, body), status=429
            )
        if "dailylimitexceeded" in code or "dailylimitexceeded" in folded:
            return DailyLimitError(
                f"{VENDOR} daily call limit reached; the next run after midnight UTC continues: {text}",
                retry_after=_seconds_to_midnight_utc(),
            )
        if any(k in code or k in folded for k in ("maxconcurrencyexceeded", "ratelimitexceeded")):
            return TransientError(f"{VENDOR} throttled the request: {text}", retry_after=_retry_seconds(error, body))
        if "unauthenticated" in code or "notauthenticated" in code or "notauthenticated" in folded:
            return ConfigError(
                f"{VENDOR} refused the credential (Not Authenticated): set a valid API token in {SETTING_TOKEN}"
            )
        if "cursor" in code or ("cursor" in folded and ("expired" in folded or "invalid" in folded)):
            return _CursorExpired(f"{VENDOR} no longer accepts the page cursor: {text}")
    first = errors[0]
    return RequestBugError(f"{VENDOR} rejected the query: {redact(str(first.get('message') or first))[:300]}")


class MondaySource:
    """Pulls monday.com time tracking columns for one account (one scope; its boards are paged in fetch).

    One scope per account, not per board: item ids are account-wide and items move between boards,
    so per-board scopes would turn a move into a delete plus a create in the ledger; boards also come
    and go, and the planner would have to track a cursor for each. Boards are paged in parallel
    inside ``fetch`` instead, under the shared limiter and complexity budget.

    Cost: one boards listing per 100 boards, ceil(items / page_size) calls per board (at least
    one), whatever the window (monday cannot filter sessions by date, so every item's history is
    read and the window is applied here), and ceil(people / 200) users calls: pages that name
    people not looked up yet are held back until 200 such people are pending or paging ends. Only
    when more than ``HOLD_SESSIONS`` sessions wait are the people seen so far looked up early, which
    costs one more call for each later batch of people first met after that.
    """

    # monday cannot filter sessions by date, so every window re-reads every board: the runner is
    # told to hand over a whole window at once rather than one chunk at a time.
    max_window_days: ClassVar[int] = 366

    name: ClassVar[str] = "monday"

    def __init__(
        self,
        config: MondayConfig,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        token = require_token(config.token, vendor="monday.com", setting=SETTING_TOKEN, what="a personal API token")
        self.config = config
        self._zone = ZoneInfo(config.timezone)
        self._sleep = sleep
        self._policy = RetryPolicy(max_attempts=config.max_attempts)
        self._limiter = limiter or limiter_for("monday", token, REQUESTS_PER_MINUTE)
        self._stats = CallStats()
        # monday: the token goes in Authorization as is, without "Bearer".
        self._client = make_client(
            config.base_url,
            headers={"Authorization": token, "API-Version": config.api_version, "Content-Type": "application/json"},
            timeout=config.timeout_seconds,
            transport=transport,
        )
        self._items_selection = _items_selection(config.field_column_types)
        self._budget_lock = threading.Lock()
        self._remaining: int | None = config.complexity_budget_per_minute
        self._reset_in = 60.0
        self._last_cost: dict[str, int] = {}
        self._paced = 0
        self._skipped = 0
        self._users: dict[str, MondayUser | None] = {}
        self._users_lock = threading.Lock()
        self._account: MondayAccount | None = None

    # ----------------------------------------------------------------- plumbing

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> MondaySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        with self._budget_lock:
            extra = {"paced": self._paced, "sessions_skipped": self._skipped}
        return {**self._stats.as_dict(), **extra}

    def _check_body(self, response: httpx.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            raise PayloadError(f"{VENDOR} answered HTTP {response.status_code} with a body that is not JSON") from None
        if not isinstance(body, dict):
            raise PayloadError(f"{VENDOR} answered with a JSON {type(body).__name__}, not an object")
        errors = _errors_of(body)
        if errors:
            error = classify_graphql_errors(errors, body)
            if isinstance(error, TransientError) and error.status == 429:
                with self._budget_lock:
                    self._remaining = None  # spent: the server's next complexity block says what is left
            raise error
        if not isinstance(body.get("data"), dict):
            raise PayloadError(f"{VENDOR} answered without a data object")

    def _pace(self, kind: str) -> None:
        """Wait for the budget to reset when the next query would cost more than what is left."""
        with self._budget_lock:
            expected = self._last_cost.get(kind, max(self._last_cost.values(), default=0))
            if self._remaining is None or expected <= self._remaining:
                if self._remaining is not None:
                    self._remaining -= expected  # reserved, so parallel boards do not all spend it
                return
            delay = self._reset_in
            self._remaining = None
            self._paced += 1
        log.info("monday.pace", kind=kind, expected_cost=expected, wait=delay)
        self._limiter.pause_for(delay)

    def _observe(self, kind: str, data: dict[str, Any]) -> None:
        raw = data.get("complexity")
        if not isinstance(raw, dict):
            return
        try:
            complexity = MondayComplexity.model_validate(raw)
        except ValidationError:
            return
        with self._budget_lock:
            self._last_cost[kind] = complexity.query
            self._remaining = complexity.after
            self._reset_in = float(max(1, complexity.reset_in_x_seconds))

    def _post(self, kind: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        self._pace(kind)
        response = send(
            self._client,
            "POST",
            self.config.base_url,
            vendor=VENDOR,
            setting=SETTING_TOKEN,
            policy=self._policy,
            limiter=self._limiter,
            stats=self._stats,
            sleep=self._sleep,
            check=self._check_body,
            json={"query": query, "variables": variables or {}},
        )
        data: dict[str, Any] = response.json()["data"]
        self._observe(kind, data)
        return data

    @staticmethod
    def _model(model: type[BaseModel], raw: Any, what: str) -> Any:
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            raise PayloadError(f"{VENDOR} {what} could not be read: {exc.errors()[0]['msg']}") from None

    # ----------------------------------------------------------------- Source protocol

    def check(self) -> None:
        self._account_info()

    def scopes(self) -> Iterable[Scope]:
        account = self._account_info()
        return [Scope("monday", account.id, account.name, self.config.timezone)]

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        boards = self._boards()
        pending = deque(_BoardPaging(board) for board in boards)
        yielded: set[str] = set()
        # Pages are released in arrival order, so a session that turns up twice is still taken from
        # the page that came first.
        held = _Held()
        unknown: set[str] = set()
        with ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="monday") as pool:
            running: dict[Future[_Page], _BoardPaging] = {}
            try:
                while pending or running:
                    while pending and len(running) < self.config.concurrency:
                        paging = pending.popleft()
                        running[pool.submit(self._next_page, paging)] = paging
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        running.pop(future)
                        page = future.result()
                        if not page.paging.done:
                            pending.appendleft(page.paging)
                        held.add(page)
                        with self._users_lock:
                            unknown |= page.people - self._users.keys()
                    if len(unknown) >= USERS_PER_CALL:
                        # Full calls only; the rest waits for more people or the end of paging.
                        full = sorted(unknown)[: len(unknown) - len(unknown) % USERS_PER_CALL]
                        self._look_up_people(full)
                        unknown.difference_update(full)
                    if held.sessions >= HOLD_SESSIONS:
                        self._look_up_people(sorted(unknown))
                        unknown.clear()
                    yield from self._release(held, scope, window, yielded)
            finally:
                for future in running:
                    future.cancel()
        self._look_up_people(sorted(unknown))
        yield from self._release(held, scope, window, yielded)

    # ----------------------------------------------------------------- paging

    def _release(self, held: _Held, scope: Scope, window: Window, yielded: set[str]) -> Iterator[TimeEntry]:
        """The entries of the held pages, from the first, as far as their people are known."""
        while held.pages:
            with self._users_lock:
                if not held.pages[0].people <= self._users.keys():
                    return
            page = held.pages.popleft()
            held.sessions -= page.sessions
            yield from self._entries(page, scope, window, yielded)

    def _entries(self, page: _Page, scope: Scope, window: Window, yielded: set[str]) -> Iterator[TimeEntry]:
        for item in page.items:
            for column in item.time_tracking:
                for session in column.history:
                    entry = normalize_session(
                        session, item=item, board=page.paging.board, scope=scope, zone=self._zone, users=self._users
                    )
                    if entry is None:
                        if session.ended_at is not None:
                            with self._budget_lock:
                                self._skipped += 1
                            log.warning("monday.session_without_start", key=session_key(item.id, session.id))
                        continue
                    # Dedupe: a restarted board (expired cursor) or an item moved mid-fetch repeats sessions.
                    if entry.work_date not in window or entry.external_id in yielded:
                        continue
                    yielded.add(entry.external_id)
                    yield entry

    def _next_page(self, paging: _BoardPaging) -> _Page:
        """The board's next page of items, restarting from items_page when monday drops the cursor."""
        while True:
            try:
                page = self._request_page(paging)
                break
            except _CursorExpired as exc:
                paging.restarts += 1
                if paging.restarts > MAX_CURSOR_RESTARTS:
                    raise PayloadError(
                        f"{VENDOR} board {paging.board.id}: cursor expired {paging.restarts} times; gave up"
                    ) from None
                log.warning("monday.cursor_expired", board=paging.board.id, error=exc.message)
                paging.cursor, paging.started = None, False
                paging.cursors.clear()
        paging.started = True
        if page.cursor is None:
            paging.done = True
        elif page.cursor in paging.cursors:
            raise PayloadError(f"{VENDOR} returned the same cursor twice for board {paging.board.id}; stopped")
        else:
            paging.cursors.add(page.cursor)
        paging.cursor = page.cursor
        sessions = [s for i in page.items for c in i.time_tracking for s in c.history]
        people = frozenset(s.started_user_id for s in sessions if s.started_user_id)
        return _Page(paging, page.items, people, len(sessions))

    def _request_page(self, paging: _BoardPaging) -> MondayItemsPage:
        limit = self.config.page_size
        if not paging.started:
            query = (
                f"query ($board: [ID!], $limit: Int!) {{ {COMPLEXITY} "
                f"boards(ids: $board) {{ id items_page(limit: $limit) {{ {self._items_selection} }} }} }}"
            )
            data = self._post("items_page", query, {"board": [paging.board.id], "limit": limit})
            boards = data.get("boards") or []
            if not boards or not isinstance(boards[0], dict):
                raise ConfigError(f"{VENDOR} board {paging.board.id} is gone or not visible: check {SETTING_BOARDS}")
            raw = boards[0].get("items_page")
        else:
            query = (
                f"query ($cursor: String!, $limit: Int!) {{ {COMPLEXITY} "
                f"next_items_page(cursor: $cursor, limit: $limit) {{ {self._items_selection} }} }}"
            )
            data = self._post("next_items_page", query, {"cursor": paging.cursor, "limit": limit})
            raw = data.get("next_items_page")
        page: MondayItemsPage = self._model(MondayItemsPage, raw, f"items page of board {paging.board.id}")
        return page

    # ----------------------------------------------------------------- look-ups

    def _account_info(self) -> MondayAccount:
        if self._account is None:
            data = self._post("check", CHECK_QUERY)
            if not data.get("account"):
                raise ConfigError(f"{VENDOR} did not name the token's account: check {SETTING_TOKEN}")
            self._account = self._model(MondayAccount, data["account"], "account")
        return self._account

    def _boards(self) -> list[MondayBoard]:
        wanted = self.config.board_ids
        found: dict[str, MondayBoard] = {}
        for page in range(1, MAX_PAGES):
            variables: dict[str, Any] = {"limit": BOARDS_PER_PAGE, "page": page}
            if wanted:
                variables["ids"] = wanted
            raw = self._post("boards", BOARDS_QUERY, variables).get("boards") or []
            for item in raw:
                if isinstance(item, dict):  # monday answers null for boards it will not show
                    board: MondayBoard = self._model(MondayBoard, item, "board")
                    found.setdefault(board.id, board)
            if len(raw) < BOARDS_PER_PAGE:
                break
        if wanted:
            missing = [b for b in wanted if b not in found]
            if missing:
                raise ConfigError(
                    f"the {VENDOR} token cannot see board(s) {', '.join(missing)}: fix {SETTING_BOARDS} "
                    "or share the boards with the token's user"
                )
            return [found[b] for b in wanted]
        # Only boards with a time tracking column can hold sessions; the rest are not worth a call.
        return [board for board in found.values() if board.columns]

    def _look_up_people(self, ids: list[str]) -> None:
        """Names and emails of session owners, cached for the source's life (up to 200 per call)."""
        for start in range(0, len(ids), USERS_PER_CALL):
            chunk = ids[start : start + USERS_PER_CALL]
            raw = self._post("users", USERS_QUERY, {"ids": chunk, "limit": len(chunk)}).get("users") or []
            found: list[MondayUser] = [self._model(MondayUser, item, "user") for item in raw]
            with self._users_lock:
                for user in found:
                    self._users[user.id] = user
                for user_id in chunk:
                    # Deleted or deactivated users may not come back; their sessions keep the bare id.
                    self._users.setdefault(user_id, None)
