"""HarvestSource: an account's time entries by date window; everyone's with an admin token, else the token's own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import ClassVar

import httpx
import structlog

from connectors._config import require_token
from connectors._ratelimit import RateLimiter
from connectors._retry import Sleep
from connectors._source import ClientSource, Once
from connectors.harvest.client import SETTING_TOKEN, HarvestClient
from connectors.harvest.config import HarvestConfig
from connectors.harvest.normalize import normalize_entry
from connectors.harvest.schema import HarvestUser
from connectors.model import Coverage, Scope, Slice, TimeEntry, Window

log = structlog.get_logger("hourbridge.harvest")


class HarvestSource(ClientSource[HarvestClient]):
    """Pulls Harvest time by ``from``/``to`` windows, so a deleted entry is seen gone on the next read.

    Harvest drops deleted entries from every listing (there is no deleted flag), so ``updated_since``
    alone could never notice one: each fetch re-reads its whole window and declares what it was
    complete for. An Administrator's token sees every user (the window), any other token is asked
    for its own user's time only and covers that one person's slice.
    """

    name: ClassVar[str] = "harvest"

    def __init__(
        self,
        config: HarvestConfig,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        token = require_token(
            config.token, vendor="Harvest", setting=SETTING_TOKEN, what="a Harvest personal access token"
        )
        self.config = config
        self.client = HarvestClient(config, token, limiter=limiter, sleep=sleep, transport=transport)
        self._lock = threading.Lock()
        self._me = Once(self.client.me)
        self._users: dict[int, HarvestUser] | None = None

    # ----------------------------------------------------------------- who the token is

    def me(self) -> HarvestUser:
        return self._me.get()

    @property
    def account_wide(self) -> bool:
        """True when the token is an Administrator's, so a listing holds every user's time."""
        return self.me().administrator

    def _people(self) -> dict[int, HarvestUser]:
        """Users by id, for their e-mail: everyone for an Administrator (one call per 2,000), else just the token's."""
        with self._lock:
            if self._users is not None:
                return self._users
        me = self.me()
        users = {u.id: u for u in self.client.users()} if me.administrator else {}
        users[me.id] = me
        with self._lock:
            self._users = users
        return users

    # ----------------------------------------------------------------- Source protocol

    def check(self) -> None:
        me = self.me()
        if not me.administrator:
            log.info("harvest.own_time_only", user=me.id)

    def scopes(self) -> Iterable[Scope]:
        account = self.config.account_id.strip()
        return [Scope("harvest", account, f"Harvest account {account}", timezone=self.config.timezone)]

    def fetch(self, scope: Scope, window: Window) -> Iterator[TimeEntry]:
        params = {"from": window.start.isoformat(), "to": window.end.isoformat()}
        me = self.me()
        if not me.administrator:
            # A Manager's token would also list the people they manage, but not all of them: ask for
            # the token's own time only, the one slice this fetch can vouch for.
            params["user_id"] = str(me.id)
        users = self._people()
        seen: set[int] = set()
        for entry in self.client.time_entries(params):
            if entry.is_running:
                continue  # Harvest: a running timer's hours still grow; it is read once it stops.
            if entry.id in seen:
                continue  # an entry edited while paging can show up on two pages
            seen.add(entry.id)
            normalized = normalize_entry(entry, scope=scope, users=users)
            if normalized.work_date in window:
                yield normalized

    def covered(self, scope: Scope, window: Window) -> Coverage:
        if self.account_wide:
            return Coverage.complete_window()
        return Coverage.snapshot([Slice(str(self.me().id), window.start, window.end)])
