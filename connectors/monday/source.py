"""MondaySource: time-tracking sessions from monday.com boards, paged in parallel, people looked up in batches."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import ClassVar
from zoneinfo import ZoneInfo

import httpx
import structlog

from connectors._config import require_token
from connectors._paging import TokenPaging
from connectors._ratelimit import RateLimiter
from connectors._retry import Sleep
from connectors._source import ClientSource
from connectors.errors import ConfigError, CursorExpired, PayloadError
from connectors.model import Scope, TimeEntry, Window
from connectors.monday.client import SETTING_BOARDS, SETTING_TOKEN, USERS_PER_CALL, VENDOR, MondayClient
from connectors.monday.config import MondayConfig
from connectors.monday.normalize import normalize_session, session_key
from connectors.monday.schema import MondayAccount, MondayBoard, MondayItem, MondayItemsPage, MondayUser

log = structlog.get_logger("hourbridge.monday")

# Sessions held back, at most, while the people they name wait to be looked up together (about
# 1 kB each as parsed models, so about 100 MB): beyond this the people seen so far are looked up at
# once, even fewer than a full call. People tend to work on some boards only, so a smaller hold
# would let a person first met on a later board cost one more call.
HOLD_SESSIONS = 100_000
MAX_CURSOR_RESTARTS = 3


@dataclass(slots=True)
class _BoardPaging:
    """Where one board's paging stands (mutated only by the thread that holds its page request)."""

    board: MondayBoard
    cursor: TokenPaging
    restarts: int = 0

    @classmethod
    def of(cls, board: MondayBoard) -> _BoardPaging:
        return cls(board, TokenPaging(VENDOR, f"board {board.id}", kind="cursor"))


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


class MondaySource(ClientSource[MondayClient]):
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
        self.client = MondayClient(config, token, limiter=limiter, sleep=sleep, transport=transport)
        self._skipped_lock = threading.Lock()
        self._skipped = 0
        self._users: dict[str, MondayUser | None] = {}
        self._users_lock = threading.Lock()
        self._account: MondayAccount | None = None

    def stats(self) -> dict[str, int]:
        with self._skipped_lock:
            extra = {"paced": self.client.paced, "sessions_skipped": self._skipped}
        return {**super().stats(), **extra}

    # ----------------------------------------------------------------- Source protocol

    def check(self) -> None:
        self._account_info()

    def scopes(self) -> Iterable[Scope]:
        account = self._account_info()
        return [Scope("monday", account.id, account.name, self.config.timezone)]

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        boards = self._boards()
        pending = deque(_BoardPaging.of(board) for board in boards)
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
                        if not page.paging.cursor.done:
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
                            with self._skipped_lock:
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
            except CursorExpired as exc:
                paging.restarts += 1
                if paging.restarts > MAX_CURSOR_RESTARTS:
                    raise PayloadError(
                        f"{VENDOR} board {paging.board.id}: cursor expired {paging.restarts} times; gave up"
                    ) from None
                log.warning("monday.cursor_expired", board=paging.board.id, error=exc.message)
                paging.cursor.restart()
        paging.cursor.advance(page.cursor)
        sessions = [s for i in page.items for c in i.time_tracking for s in c.history]
        people = frozenset(s.started_user_id for s in sessions if s.started_user_id)
        return _Page(paging, page.items, people, len(sessions))

    def _request_page(self, paging: _BoardPaging) -> MondayItemsPage:
        # Not started (or restarted): the board's first page; otherwise the page the cursor names.
        return self.client.items_page(paging.board.id, paging.cursor.token if paging.cursor.started else None)

    # ----------------------------------------------------------------- look-ups

    def _account_info(self) -> MondayAccount:
        if self._account is None:
            self._account = self.client.account()
        return self._account

    def _boards(self) -> list[MondayBoard]:
        wanted = self.config.board_ids
        found = self.client.boards(wanted)
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
            found = self.client.users(chunk)
            with self._users_lock:
                for user in found:
                    self._users[user.id] = user
                for user_id in chunk:
                    # Deleted or deactivated users may not come back; their sessions keep the bare id.
                    self._users.setdefault(user_id, None)
