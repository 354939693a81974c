"""XeroClient: tenant-scoped, rate-limited calls to the Projects and Accounting APIs, with names resolved once."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from connectors._config import BearerAuth, TokenSource, resolve_token_source
from connectors._http import decode_json, error_from_status, make_client
from connectors._paging import PageNumbers
from connectors._ratelimit import RateLimiter, limiter_for
from connectors._redact import redact
from connectors._retry import RetryPolicy, Sleep
from connectors._session import ApiSession
from connectors.errors import (
    ConfigError,
    CredentialRefused,
    DailyLimitError,
    OutcomeUnknown,
    PayloadError,
    TransientError,
    XeroRefused,
    parse_retry_after,
)
from connectors.xero.config import ENV_PREFIX, XeroConfig

VENDOR = "Xero"
SETTING_TOKEN = f"{ENV_PREFIX}ACCESS_TOKEN"
SETTING_TENANT = f"{ENV_PREFIX}TENANT_ID"
PAGE_SIZE = 500  # Projects API: pageSize 1-500
MINUTE_SECONDS = 60.0
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

CREDENTIAL_ADVICE = "an access token (or connect the organisation so the OAuth layer supplies one)"


def is_uuid(value: str) -> bool:
    return _UUID.match(value) is not None


def error_text(payload: Any) -> str:
    """A readable line from either API's error body (Projects: message/modelState; Accounting: Elements)."""
    if not isinstance(payload, Mapping):
        return "no detail given"
    parts: list[str] = []
    for key in ("message", "Message", "Detail", "Title"):
        value = payload.get(key)
        if isinstance(value, str) and value and value not in parts:
            parts.append(value)
            break
    state = payload.get("modelState")
    if isinstance(state, Mapping):
        for field, messages in state.items():
            if isinstance(messages, list):
                parts.extend(f"{field}: {m}" for m in messages if isinstance(m, str))
    for element in payload.get("Elements") or []:
        if isinstance(element, Mapping):
            parts.extend(validation_messages(element))
    return redact("; ".join(parts) or "no detail given")[:500]


def validation_messages(element: Mapping[str, Any]) -> list[str]:
    errors = element.get("ValidationErrors") or []
    return [str(e.get("Message")) for e in errors if isinstance(e, Mapping) and e.get("Message")]


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    try:
        return None if value is None else int(value.strip())
    except ValueError:
        return None


# Xero: at most 5 calls in flight per tenant connection, whichever API and whichever job makes them.
# The cap is process-wide per tenant, so two sinks (or worker jobs) of one organisation share it.
_tenant_slots: dict[str, threading.BoundedSemaphore] = {}
_tenant_slots_lock = threading.Lock()


def tenant_slots(tenant_id: str, limit: int) -> threading.BoundedSemaphore:
    """The in-flight cap of one tenant in this process (sized by the first client that asks)."""
    with _tenant_slots_lock:
        slots = _tenant_slots.get(tenant_id)
        if slots is None:
            slots = _tenant_slots[tenant_id] = threading.BoundedSemaphore(limit)
        return slots


# Xero counts 60 calls in any minute per tenant and says after every answer how many are left
# (X-MinLimit-Remaining, which caps the bucket): a delivery of a few calls need not be paced at one
# a second, so the bucket holds ten seconds' worth (10 calls at the default limit) instead of two.
BURST_SECONDS = 10.0
# Each grant counts a little longer than Xero's minute: a request reaches Xero (which starts its count
# then) a moment after it was granted, and counting only 60 s let one call too many reach a full
# window now and then (a 429) once the limiter reopened as its oldest grant left (as QuickBooks').
WINDOW_SECONDS = 62.0


class XeroClient:
    """Calls for one tenant: ``Xero-Tenant-Id`` on all, ``Idempotency-Key`` on every write, limits from headers."""

    def __init__(
        self,
        config: XeroConfig,
        *,
        token: TokenSource | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        limiter: RateLimiter | None = None,
    ) -> None:
        source = resolve_token_source(
            config.access_token,
            token,
            vendor="Xero",
            setting=SETTING_TOKEN,
            what=CREDENTIAL_ADVICE,
        )
        self.config = config
        headers = {"Accept": "application/json", "Xero-Tenant-Id": config.tenant_id}
        # One connection pool for both APIs: requests name their API's full address.
        http = make_client("", headers=headers, timeout=config.timeout_seconds, transport=transport)
        http.auth = BearerAuth(source, vendor="Xero", setting=SETTING_TOKEN, reconnect="connect the organisation again")
        self._bases = {
            "projects": config.projects_base_url.rstrip("/"),
            "accounting": config.accounting_base_url.rstrip("/"),
        }
        self.session = ApiSession(
            vendor=VENDOR,
            setting=SETTING_TENANT,
            policy=RetryPolicy(max_attempts=config.max_attempts),
            # Xero: 60 calls/min, 5 in flight and 5,000/day per tenant connection, whichever API is called.
            limiter=limiter
            or limiter_for(
                "xero",
                f"tenant:{config.tenant_id}",
                config.rate_limit_per_minute,
                burst_seconds=BURST_SECONDS,
                window_seconds=WINDOW_SECONDS,
            ),
            http=http,
            sleep=sleep,
        )
        self.stats = self.session.stats
        self._slots = tenant_slots(config.tenant_id, config.max_concurrency)
        self._lock = threading.Lock()
        self._calls_sent = 0
        self.day_remaining: int | None = None
        self.minute_remaining: int | None = None

    def close(self) -> None:
        self.session.close()

    def counters(self) -> dict[str, int]:
        out = self.stats.as_dict()
        with self._lock:
            day = self.day_remaining
            used = self._calls_sent
        out["day_limit_remaining"] = day if day is not None else max(0, self.config.daily_limit - used)
        return out

    # ------------------------------------------------------------------ plumbing

    def call(
        self,
        api: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        key: str | None = None,
        allow_404: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One request under the limits; the decoded JSON (``None`` for 204, or a 404 when allowed).

        ``key`` marks a write: it travels as ``Idempotency-Key``, and a lost answer raises ``OutcomeUnknown``.
        ``headers`` are sent as well (e.g. ``If-Modified-Since`` on a read).
        """
        url = self._bases["projects" if api == "projects" else "accounting"] + path
        sent: dict[str, str] = dict(headers or {})
        if body is not None:
            sent["Content-Type"] = "application/json"
        if key is not None:
            sent["Idempotency-Key"] = key
        write = key is not None

        def once() -> Any:
            with self._lock:
                if self.day_remaining == 0 or self._calls_sent >= self.config.daily_limit:
                    raise DailyLimitError(
                        f"Xero's daily limit of {self.config.daily_limit} calls for this organisation is used up; "
                        "the rest is delivered by a run after it resets"
                    )
                self._calls_sent += 1
            with self._slots:
                try:
                    response = self.session.http.request(method, url, params=params, content=body, headers=sent)
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                    raise TransientError(f"Xero could not be reached ({type(exc).__name__})") from None
                except (httpx.TimeoutException, httpx.TransportError) as exc:
                    if write:
                        raise OutcomeUnknown(
                            f"Xero did not answer after the write was sent ({type(exc).__name__}); "
                            "look the record up before sending it again"
                        ) from None
                    raise TransientError(f"Xero did not answer ({type(exc).__name__})") from None
            self._observe(response)
            if response.status_code == 404 and allow_404:
                return None
            checked = self._checked(response, write=write)
            if checked.status_code == 204 or not checked.content:
                return None
            # Read inside the retry loop: a truncated or non-JSON answer to a read is retried like a
            # 5xx; to a write it may hide a record that landed, so it becomes OutcomeUnknown.
            return decode_json(checked, vendor=VENDOR, write=write)

        return self.session.call(once, what=f"Xero {path}")

    def _observe(self, response: httpx.Response) -> None:
        minute = _header_int(response.headers, "X-MinLimit-Remaining")
        day = _header_int(response.headers, "X-DayLimit-Remaining")
        with self._lock:
            if minute is not None:
                self.minute_remaining = minute
            if day is not None:
                self.day_remaining = day
        if minute is not None:
            # Xero names no reset time for its minute window; a full minute is the safe assumption.
            self.session.limiter.observe_remaining(minute, MINUTE_SECONDS)

    def _checked(self, response: httpx.Response, *, write: bool) -> httpx.Response:
        status = response.status_code
        if status < 400:
            return response
        if status == 429:
            # Xero: X-Rate-Limit-Problem names the limit hit (minute, day, concurrent, appminute);
            # the header names are from third-party descriptions, so a bare 429 is read as "minute".
            problem = (response.headers.get("X-Rate-Limit-Problem") or "minute").strip().lower()
            if problem == "day":
                with self._lock:
                    self.day_remaining = 0
                raise DailyLimitError(
                    "Xero's daily call limit for this organisation is used up; the rest is delivered after it resets"
                )
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is None:
                retry_after = 1.0 if problem == "concurrent" else MINUTE_SECONDS
            raise TransientError(f"Xero throttled the request ({problem} limit)", retry_after=retry_after, status=429)
        if status >= 500 and write:
            raise OutcomeUnknown(
                f"Xero answered HTTP {status} to a write that may have landed; look it up before sending it again"
            )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if status in (401, 403):
            raise CredentialRefused(
                f"Xero refused the request (HTTP {status}): reconnect the organisation or set a valid {SETTING_TOKEN}, "
                f"and check that {SETTING_TENANT} names a tenant this connection may use ({error_text(payload)})",
                status=status,
            )
        if status in (400, 404) and payload is not None:
            raise XeroRefused(f"Xero refused the request: {error_text(payload)}", status)
        raise error_from_status(
            status, vendor=VENDOR, setting=SETTING_TENANT, detail=response.text, headers=response.headers
        )

    def pages(self, path: str, params: Mapping[str, str] | None = None) -> list[Mapping[str, Any]]:
        """Every item of a paged Projects API list."""
        items: list[Mapping[str, Any]] = []
        paging = PageNumbers(VENDOR, path, first=1)
        while not paging.done:
            payload = self.call(
                "projects",
                "GET",
                path,
                params={**(params or {}), "page": str(paging.number), "pageSize": str(PAGE_SIZE)},
            )
            if not isinstance(payload, Mapping):
                raise PayloadError(f"Xero answered {path} without a page")
            batch = [i for i in payload.get("items") or [] if isinstance(i, Mapping)]
            items.extend(batch)
            pagination = payload.get("pagination") or {}
            count = pagination.get("pageCount") if isinstance(pagination, Mapping) else None
            last = not payload.get("items") or not isinstance(count, int) or paging.number >= count
            # Projects items carry their own id field (projectId, taskId, ...): the page's JSON tells pages apart.
            paging.advance(last=last, signature=repr(batch) if batch else None)
        return items


class ProjectNames:
    """Project, task and user names to ids (``/Projects``, ``/Projects/{id}/Tasks``, ``/ProjectsUsers``), cached."""

    def __init__(self, client: XeroClient) -> None:
        self._client = client
        self._projects: dict[str, str] | None = None
        self._closed: dict[str, str] | None = None
        self._users: dict[str, str] | None = None
        self._tasks: dict[str, dict[str, str]] = {}
        self._lock = threading.RLock()

    @staticmethod
    def _index(items: Iterable[Mapping[str, Any]], id_field: str) -> dict[str, str]:
        index: dict[str, str] = {}
        for item in items:
            name, ident = item.get("name"), item.get(id_field)
            if isinstance(name, str) and ident is not None:
                index.setdefault(name.casefold(), str(ident))
        return index

    def project_id(self, ref: str, where: str, *, closed: bool = False) -> str:
        """The id of the open project ``ref`` names; ``closed`` also looks among closed ones (to read time back)."""
        if is_uuid(ref):
            return ref
        with self._lock:
            if self._projects is None:
                self._projects = self._index(self._client.pages("/Projects", {"states": "INPROGRESS"}), "projectId")
            found = self._projects.get(ref.casefold())
            if found is None and closed:
                if self._closed is None:
                    self._closed = self._index(self._client.pages("/Projects", {"states": "CLOSED"}), "projectId")
                found = self._closed.get(ref.casefold())
        if found is None:
            raise ConfigError(
                f"Xero has no {'' if closed else 'open '}project named '{ref}' (from {where}): "
                "create it in Xero Projects or fix the name."
            )
        return found

    def task_id(self, project_id: str, ref: str, where: str) -> str:
        if is_uuid(ref):
            return ref
        with self._lock:
            tasks = self._tasks.get(project_id)
            if tasks is None:
                tasks = self._index(self._client.pages(f"/Projects/{project_id}/Tasks"), "taskId")
                self._tasks[project_id] = tasks
            found = tasks.get(ref.casefold())
        if found is None:
            raise ConfigError(
                f"Xero project {project_id} has no task named '{ref}' (from {where}): "
                "add the task in Xero or fix the name."
            )
        return found

    def user_id(self, name: str, where: str) -> str:
        if is_uuid(name):
            return name
        with self._lock:
            if self._users is None:
                self._users = self._index(self._client.pages("/ProjectsUsers"), "userId")
            found = self._users.get(name.casefold())
        if found is None:
            raise ConfigError(
                f"Xero has no project user named '{name}' (from {where}): invite them to Xero Projects or fix the name."
            )
        return found


def where_names(field: str, names: Iterable[str]) -> str:
    """A Xero ``where`` filter matching any of ``names`` (``"`` and ``\\`` escaped with a backslash)."""
    quoted = ('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names)
    return " OR ".join(f"{field}=={q}" for q in quoted)
