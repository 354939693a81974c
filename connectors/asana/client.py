"""AsanaClient: the official SDK's calls under the shared session (retry policy, limiter, stats), and offset paging."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import asana
import structlog
import urllib3
from asana.rest import ApiException
from pydantic import ValidationError

from connectors._http import error_from_status
from connectors._paging import TokenPaging
from connectors._ratelimit import RateLimiter, limiter_for
from connectors._redact import redact
from connectors._retry import RetryPolicy, Sleep
from connectors._session import ApiSession
from connectors.asana.config import ENV_PREFIX, AsanaConfig
from connectors.asana.schema import AsanaTask, AsanaTimeEntry, AsanaUser
from connectors.errors import PayloadError, RequestBugError, TransientError

log = structlog.get_logger("hourbridge.asana")

VENDOR = "Asana"
# What the list endpoints' ``opt_fields`` enum allows (asana_oas.yaml, GET /time_tracking_entries and
# GET /tasks/{task_gid}/time_tracking_entries): nothing more is sent by default, since an Asana that
# enforces the enum answers 400 to the rest.
LIST_FIELDS = (
    "duration_minutes,entered_on,attributable_to,attributable_to.name,created_by,created_by.name,"
    "categories,categories.name"
)
# The full-object fields, in the single GET's enum only. ``list_fields = extended`` asks the list for
# them too, for an Asana that is known to return them there.
FULL_FIELDS = "task,task.name,billable_status,approval_status,description,created_at"
EXTENDED_LIST_FIELDS = f"{LIST_FIELDS},{FULL_FIELDS}"
DETAIL_FIELDS = EXTENDED_LIST_FIELDS
TIMESHEET_FIELDS = "user,start_date,end_date,approval_status"
# Restarts of one listing after Asana refused its offset (expired: "an offset token will expire after
# some time, as data may have changed"); past this the listing fails instead of looping.
MAX_OFFSET_RESTARTS = 3
TASK_FIELDS = "name,custom_fields,custom_fields.name,custom_fields.display_value,tags,tags.name,actual_time_minutes"
USER_FIELDS = "name,email"

SETTING_TOKEN = f"{ENV_PREFIX}TOKEN"
SETTING_WORKSPACES = f"{ENV_PREFIX}WORKSPACES"

Page = list[Any]


class AsanaClient:
    """The Asana calls a source makes, each one request (or one paged listing) under the session."""

    def __init__(
        self, config: AsanaConfig, token: str, *, limiter: RateLimiter | None, sleep: Sleep = time.sleep
    ) -> None:
        configuration = asana.Configuration()
        configuration.host = config.base_url.rstrip("/")
        configuration.access_token = token
        # The SDK retries 429/5xx itself through urllib3; switched off so that the session's one
        # retry policy owns all waiting (Retry-After honoured once, shared by every thread).
        configuration.retry_strategy = urllib3.Retry(
            total=0, connect=0, read=0, redirect=0, status=0, raise_on_status=False
        )
        configuration.connection_pool_maxsize = max(4, config.concurrency * 2)
        self._sdk = asana.ApiClient(configuration)
        self.session = ApiSession(
            vendor=VENDOR,
            setting=SETTING_TOKEN,
            policy=RetryPolicy(max_attempts=config.max_attempts),
            limiter=limiter or limiter_for("asana", token, config.effective_rate_limit),
            sleep=sleep,
            on_close=self._close_sdk,
        )
        self._entries = asana.TimeTrackingEntriesApi(self._sdk)
        self._users_api = asana.UsersApi(self._sdk)
        self._workspaces_api = asana.WorkspacesApi(self._sdk)
        self._tasks_api = asana.TasksApi(self._sdk)
        self._timesheets_api = asana.TimesheetApprovalStatusesApi(self._sdk)
        self._timeout = (min(10.0, config.timeout_seconds), config.timeout_seconds)

    def _close_sdk(self) -> None:
        pool = getattr(self._sdk, "pool", None)
        if pool is not None:
            pool.close()
            pool.join()
            del self._sdk.pool
        self._sdk.rest_client.pool_manager.clear()

    def close(self) -> None:
        self.session.close()

    # ----------------------------------------------------------------- plumbing

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        def once() -> Any:
            try:
                return fn()
            except ApiException as exc:
                headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
                body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
                setting = SETTING_WORKSPACES if exc.status in (402, 404) else SETTING_TOKEN
                raise error_from_status(
                    int(exc.status or 0), vendor=VENDOR, setting=setting, detail=body, headers=headers
                ) from None
            except urllib3.exceptions.HTTPError as exc:
                raise TransientError(f"Asana could not be reached: {redact(str(exc))}") from None

        return self.session.call(once, what=what)

    def _pages(self, what: str, request: Callable[[dict[str, Any]], Any], opts: dict[str, Any]) -> Iterator[Page]:
        """Follow ``next_page.offset`` until it is null; the paginator stops a repeated offset.

        An offset Asana refuses (it expires "after some time, as data may have changed") restarts the
        listing from its first page: the pages already yielded come again, so every caller keys what
        it collects by gid (the time-entry fetch drops gids it has already yielded).
        """
        paging = TokenPaging(VENDOR, what, kind="page offset")
        restarts = 0
        while not paging.done:
            page_opts = dict(opts)
            if paging.token is not None:
                page_opts["offset"] = paging.token
            try:
                payload = self._call(what, functools.partial(request, page_opts))
            except RequestBugError as exc:
                # The first page of this same query was accepted, so a 400 now can only be about the
                # offset (the status of an expired offset is unconfirmed: 400 is what a malformed one gets).
                if paging.token is None or exc.status != 400:
                    raise
                restarts += 1
                if restarts > MAX_OFFSET_RESTARTS:
                    raise PayloadError(
                        f"{VENDOR} refused the page offset of {what} {restarts} times; gave up: {exc.message}"
                    ) from None
                log.warning("asana.offset_refused", what=what, restart=restarts, error=exc.message)
                paging.restart()
                continue
            if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
                raise PayloadError(f"Asana answered {what} without a data list")
            yield payload["data"]
            next_page = payload.get("next_page")
            offset = next_page.get("offset") if isinstance(next_page, dict) else None
            paging.advance(str(offset) if offset else None)

    @staticmethod
    def parse_entry(item: Any) -> AsanaTimeEntry:
        try:
            return AsanaTimeEntry.model_validate(item)
        except ValidationError as exc:
            gid = item.get("gid") if isinstance(item, dict) else None
            raise PayloadError(f"Asana time entry {gid!r} could not be read: {exc.errors()[0]['msg']}") from None

    # ----------------------------------------------------------------- calls

    def me(self) -> None:
        self._call("users/me", lambda: self._users_api.get_user("me", {"opt_fields": "name"}, full_payload=True))

    def timesheets(self, workspace_gid: str, from_date: date) -> Iterator[Page]:
        """Timesheet approval statuses (a person's week each) of the workspace from ``from_date`` on."""
        return self._pages(
            "timesheet_approval_statuses",
            lambda o: self._timesheets_api.get_timesheet_approval_statuses(
                workspace_gid, o, full_payload=True, _request_timeout=self._timeout
            ),
            {"from_date": from_date.isoformat(), "limit": 100, "opt_fields": TIMESHEET_FIELDS},
        )

    def workspaces(self) -> Iterator[Page]:
        return self._pages(
            "workspaces",
            lambda o: self._workspaces_api.get_workspaces(o, full_payload=True, _request_timeout=self._timeout),
            {"limit": 100, "opt_fields": "name"},
        )

    def time_entries(self, opts: dict[str, Any]) -> Iterator[Page]:
        return self._pages(
            "time_tracking_entries",
            lambda o: self._entries.get_time_tracking_entries(o, full_payload=True, _request_timeout=self._timeout),
            opts,
        )

    def time_entry(self, gid: str) -> AsanaTimeEntry:
        payload = self._call(
            "time_tracking_entry",
            lambda: self._entries.get_time_tracking_entry(
                gid, {"opt_fields": DETAIL_FIELDS}, full_payload=True, _request_timeout=self._timeout
            ),
        )
        return self.parse_entry(payload.get("data") if isinstance(payload, dict) else None)

    def task_time_entries(self, task_gid: str) -> Iterator[Page]:
        return self._pages(
            "task time_tracking_entries",
            functools.partial(self._task_entries_page, task_gid),
            {"limit": 100, "opt_fields": "entered_on"},
        )

    def _task_entries_page(self, task_gid: str, opts: dict[str, Any]) -> Any:
        return self._entries.get_time_tracking_entries_for_task(
            task_gid, opts, full_payload=True, _request_timeout=self._timeout
        )

    def task(self, gid: str) -> AsanaTask | None:
        payload = self._call(
            "task",
            lambda: self._tasks_api.get_task(
                gid, {"opt_fields": TASK_FIELDS}, full_payload=True, _request_timeout=self._timeout
            ),
        )
        data = payload.get("data") if isinstance(payload, dict) else None
        return AsanaTask.model_validate(data) if isinstance(data, dict) else None

    def project_tasks(self, project_gid: str) -> Iterator[AsanaTask]:
        for page in self._pages(
            "tasks",
            lambda o: self._tasks_api.get_tasks(o, full_payload=True, _request_timeout=self._timeout),
            {"project": project_gid, "limit": 100, "opt_fields": TASK_FIELDS},
        ):
            for item in page:
                yield AsanaTask.model_validate(item)

    def workspace_users(self, workspace_gid: str) -> Iterator[AsanaUser]:
        for page in self._pages(
            "workspace users",
            lambda o: self._users_api.get_users_for_workspace(
                workspace_gid, o, full_payload=True, _request_timeout=self._timeout
            ),
            {"limit": 100, "opt_fields": USER_FIELDS},
        ):
            for item in page:
                yield AsanaUser.model_validate(item)
