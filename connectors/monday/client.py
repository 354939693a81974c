"""MondayClient: GraphQL calls under the shared session, paced by the complexity budget, errors read from 200s."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from connectors._http import make_client
from connectors._paging import PageNumbers
from connectors._ratelimit import RateLimiter, limiter_for
from connectors._redact import redact
from connectors._retry import RetryPolicy, Sleep
from connectors._session import ApiSession
from connectors.errors import (
    ConfigError,
    CursorExpired,
    DailyLimitError,
    GarbledAnswer,
    HourbridgeError,
    PayloadError,
    RequestBugError,
    TransientError,
)
from connectors.monday.config import ENV_PREFIX, MondayConfig
from connectors.monday.schema import MondayAccount, MondayBoard, MondayComplexity, MondayItemsPage, MondayUser

log = structlog.get_logger("hourbridge.monday")

VENDOR = "monday.com"
SETTING_TOKEN = f"{ENV_PREFIX}TOKEN"
SETTING_BOARDS = f"{ENV_PREFIX}BOARD_IDS"
# monday: 5,000 requests a minute per token is the documented request cap; the complexity budget is
# what actually binds, and it is paced separately from the answers' ``complexity`` block.
REQUESTS_PER_MINUTE = 5000
BOARDS_PER_PAGE = 100
USERS_PER_CALL = 200
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

# The wire codes we act on, folded (monday spells them COMPLEXITY_BUDGET_EXHAUSTED or complexityBudgetExhausted).
CODE_COMPLEXITY = "complexitybudgetexhausted"
CODE_DAILY_LIMIT = "dailylimitexceeded"
CODE_THROTTLED = ("maxconcurrencyexceeded", "ratelimitexceeded")
CODE_UNAUTHENTICATED = ("unauthenticated", "notauthenticated")
CODE_CURSOR = "cursor"  # CursorExpiredError, InvalidCursorException, ...
# monday: an internal failure can come inside a 200 as INTERNAL_SERVER_ERROR (or InternalServerException
# in the flat pre-2024 shape), with extensions.status_code 500; it is retried like an HTTP 5xx.
CODE_INTERNAL = ("internalservererror", "internalserverexception", "serviceunavailable")


def items_selection(field_types: list[str]) -> str:
    """What each item page asks for: the time tracking history, and the mapping columns by type."""
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


def wire_codes(error: dict[str, Any]) -> tuple[str, str]:
    """The folded codes one GraphQL error carries: the code field, and the one its vendor text stands for.

    monday: some errors carry no code at all ("Not Authenticated" inside a 200; versions before
    2024-01 put only a message on a complexity error), so for those the vendor's own text is the
    only signal. It is read here, once, and turned into a code; everything after this decides by
    code alone.
    """
    extensions = _extensions(error)
    code = _norm(str(extensions.get("code") or error.get("code") or error.get("error_code") or ""))
    folded = _norm(str(error.get("message") or ""))
    spoken = ""
    if CODE_COMPLEXITY in folded:
        spoken = CODE_COMPLEXITY
    elif CODE_DAILY_LIMIT in folded:
        spoken = CODE_DAILY_LIMIT
    elif any(k in folded for k in CODE_THROTTLED):
        spoken = CODE_THROTTLED[0]
    elif "notauthenticated" in folded:
        spoken = "notauthenticated"
    elif CODE_CURSOR in folded and ("expired" in folded or "invalid" in folded):
        spoken = CODE_CURSOR
    elif folded.startswith("internalservererror") or _status_code(error) >= 500:
        spoken = CODE_INTERNAL[0]
    return code, spoken


def _status_code(error: dict[str, Any]) -> int:
    """The HTTP status monday files a GraphQL error under (``extensions.status_code``), 0 when absent."""
    value = _number(_extensions(error).get("status_code", error.get("status_code")))
    return int(value) if value is not None else 0


def classify_graphql_errors(errors: list[dict[str, Any]], body: dict[str, Any]) -> HourbridgeError:
    """The error to raise for a GraphQL ``errors`` list (monday puts most failures inside a 200)."""
    for error in errors:
        code, spoken = wire_codes(error)
        text = redact(str(error.get("message") or ""))[:300]
        if CODE_COMPLEXITY in code or spoken == CODE_COMPLEXITY:
            # Counted as a throttle (status 429) although it may come inside a 200.
            return TransientError(
                f"{VENDOR} complexity budget exhausted: {text}", retry_after=_retry_seconds(error, body), status=429
            )
        if CODE_DAILY_LIMIT in code or spoken == CODE_DAILY_LIMIT:
            return DailyLimitError(
                f"{VENDOR} daily call limit reached; the next run after midnight UTC continues: {text}",
                retry_after=_seconds_to_midnight_utc(),
            )
        if any(k in code for k in CODE_THROTTLED) or spoken in CODE_THROTTLED:
            return TransientError(f"{VENDOR} throttled the request: {text}", retry_after=_retry_seconds(error, body))
        if any(k in code for k in CODE_UNAUTHENTICATED) or spoken == "notauthenticated":
            return ConfigError(
                f"{VENDOR} refused the credential (Not Authenticated): set a valid API token in {SETTING_TOKEN}"
            )
        if CODE_CURSOR in code or spoken == CODE_CURSOR:
            return CursorExpired(f"{VENDOR} no longer accepts the page cursor: {text}")
        if any(k in code for k in CODE_INTERNAL) or spoken in CODE_INTERNAL:
            return GarbledAnswer(f"{VENDOR} reported an internal error inside a 200: {text}", status=500)
    first = errors[0]
    return RequestBugError(f"{VENDOR} rejected the query: {redact(str(first.get('message') or first))[:300]}")


def parse_model(model: type[BaseModel], raw: Any, what: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise PayloadError(f"{VENDOR} {what} could not be read: {exc.errors()[0]['msg']}") from None


class MondayClient:
    """The monday.com queries a source makes; every one paced against the complexity budget it last cost."""

    def __init__(
        self,
        config: MondayConfig,
        token: str,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        # monday: the token goes in Authorization as is, without "Bearer".
        http = make_client(
            config.base_url,
            headers={"Authorization": token, "API-Version": config.api_version, "Content-Type": "application/json"},
            timeout=config.timeout_seconds,
            transport=transport,
        )
        self.session = ApiSession(
            vendor=VENDOR,
            setting=SETTING_TOKEN,
            policy=RetryPolicy(max_attempts=config.max_attempts),
            limiter=limiter or limiter_for("monday", token, REQUESTS_PER_MINUTE),
            http=http,
            sleep=sleep,
        )
        self._items_selection = items_selection(config.field_column_types)
        self._budget_lock = threading.Lock()
        self._remaining: int | None = config.complexity_budget_per_minute
        self._reset_in = 60.0
        self._last_cost: dict[str, int] = {}
        self._paced = 0

    def close(self) -> None:
        self.session.close()

    @property
    def paced(self) -> int:
        """How many times a query waited for the complexity budget to reset before it was sent."""
        with self._budget_lock:
            return self._paced

    # ----------------------------------------------------------------- plumbing

    def _check_body(self, body: Any) -> None:
        """monday's ``validate_response``: errors inside a 200 become the right error (see ``classify``)."""
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
        self.session.limiter.pause_for(delay)

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

    def post(self, kind: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        self._pace(kind)
        body = self.session.send_json(
            "POST",
            self.config.base_url,
            check=self._check_body,
            json={"query": query, "variables": variables or {}},
        )
        data: dict[str, Any] = body["data"]
        self._observe(kind, data)
        return data

    # ----------------------------------------------------------------- queries

    def account(self) -> MondayAccount:
        data = self.post("check", CHECK_QUERY)
        if not data.get("account"):
            raise ConfigError(f"{VENDOR} did not name the token's account: check {SETTING_TOKEN}")
        account: MondayAccount = parse_model(MondayAccount, data["account"], "account")
        return account

    def boards(self, wanted: list[str]) -> dict[str, MondayBoard]:
        """The boards ``wanted`` names (every active board when empty), 100 per page from page 1."""
        found: dict[str, MondayBoard] = {}
        paging = PageNumbers(VENDOR, "the board list", first=1)
        while not paging.done:
            variables: dict[str, Any] = {"limit": BOARDS_PER_PAGE, "page": paging.number}
            if wanted:
                variables["ids"] = wanted
            raw = self.post("boards", BOARDS_QUERY, variables).get("boards") or []
            ids: list[str] = []
            for item in raw:
                if isinstance(item, dict):  # monday answers null for boards it will not show
                    board: MondayBoard = parse_model(MondayBoard, item, "board")
                    found.setdefault(board.id, board)
                    ids.append(board.id)
            paging.advance(last=len(raw) < BOARDS_PER_PAGE, signature=tuple(ids) or None)
        return found

    def items_page(self, board_id: str, cursor: str | None) -> MondayItemsPage:
        """A board's first page of items (``cursor`` None) or the page ``cursor`` points at."""
        limit = self.config.page_size
        if cursor is None:
            query = (
                f"query ($board: [ID!], $limit: Int!) {{ {COMPLEXITY} "
                f"boards(ids: $board) {{ id items_page(limit: $limit) {{ {self._items_selection} }} }} }}"
            )
            data = self.post("items_page", query, {"board": [board_id], "limit": limit})
            boards = data.get("boards") or []
            if not boards or not isinstance(boards[0], dict):
                raise ConfigError(f"{VENDOR} board {board_id} is gone or not visible: check {SETTING_BOARDS}")
            raw = boards[0].get("items_page")
        else:
            query = (
                f"query ($cursor: String!, $limit: Int!) {{ {COMPLEXITY} "
                f"next_items_page(cursor: $cursor, limit: $limit) {{ {self._items_selection} }} }}"
            )
            data = self.post("next_items_page", query, {"cursor": cursor, "limit": limit})
            raw = data.get("next_items_page")
        page: MondayItemsPage = parse_model(MondayItemsPage, raw, f"items page of board {board_id}")
        return page

    def users(self, ids: list[str]) -> list[MondayUser]:
        """Up to ``USERS_PER_CALL`` users by id (deleted or deactivated ones may not come back)."""
        raw = self.post("users", USERS_QUERY, {"ids": ids, "limit": len(ids)}).get("users") or []
        return [parse_model(MondayUser, item, "user") for item in raw]
