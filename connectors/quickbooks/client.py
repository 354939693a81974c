"""QuickBooksClient: authenticated, rate-limited calls to one realm, and names resolved to ids in one query per kind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from connectors._config import BearerAuth, TokenSource, resolve_token_source
from connectors._http import decode_json, error_from_status, make_client
from connectors._paging import PageNumbers
from connectors._ratelimit import RateLimiter, limiter_for
from connectors._redact import redact
from connectors._retry import RetryPolicy, Sleep
from connectors._session import ApiSession
from connectors.delivery import REF_QB_CLASS, REF_QB_CUSTOMER, REF_QB_DEPARTMENT, REF_QB_ITEM, Line
from connectors.errors import (
    ConfigError,
    OutcomeUnknown,
    PayloadError,
    QuickBooksFault,
    TransientError,
    parse_retry_after,
)
from connectors.quickbooks.config import ENV_PREFIX, QuickBooksConfig
from connectors.quickbooks.render import QuickBooksIds

VENDOR = "QuickBooks"
SETTING_TOKEN = f"{ENV_PREFIX}ACCESS_TOKEN"
SETTING_REALM = f"{ENV_PREFIX}REALM_ID"
# QuickBooks: a query answers at most 1000 rows; STARTPOSITION is 1-based.
MAX_RESULTS = 1000
# Names per IN (...) list: the whole statement travels in the URL.
NAMES_PER_QUERY = 100
# QuickBooks fault codes we act on.
FAULT_STALE_OBJECT = "5010"
FAULT_OBJECT_NOT_FOUND = "610"

CREDENTIAL_ADVICE = "an access token (or connect the company so the OAuth layer supplies one)"
# QuickBooks: at most 10 requests in flight per app and realm (the 11th gets 429 ThrottleExceeded).
# Shared by every client of the realm in this process, so parallel jobs never exceed it together.
MAX_CONCURRENT_PER_REALM = 10
_realm_slots: dict[str, threading.BoundedSemaphore] = {}
_realm_slots_lock = threading.Lock()


def realm_slots(realm_id: str) -> threading.BoundedSemaphore:
    """The process-wide in-flight cap of one realm."""
    with _realm_slots_lock:
        slots = _realm_slots.get(realm_id)
        if slots is None:
            slots = _realm_slots[realm_id] = threading.BoundedSemaphore(MAX_CONCURRENT_PER_REALM)
        return slots


def fault_text(fault: Mapping[str, Any]) -> tuple[str, tuple[str, ...]]:
    """A readable line and the error codes of a Fault (either spelling: ``Fault``/``fault``)."""
    errors = fault.get("Error") or fault.get("error") or []
    parts: list[str] = []
    codes: list[str] = []
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, Mapping):
            continue
        code = str(error.get("code", ""))
        message = str(error.get("Message") or error.get("message") or "").strip()
        detail = str(error.get("Detail") or error.get("detail") or "").strip()
        text = message if not detail or detail == message else f"{message}: {detail}"
        element = error.get("element")
        if element:
            text = f"{text} (element {element})"
        parts.append(f"{text} [code {code}]" if code else text)
        codes.append(code)
    kind = fault.get("type")
    summary = "; ".join(parts) or "no detail given"
    return redact(f"{kind}: {summary}" if kind else summary)[:500], tuple(codes)


def _fault_of(payload: Any) -> Mapping[str, Any] | None:
    if isinstance(payload, Mapping):
        fault = payload.get("Fault") or payload.get("fault")
        if isinstance(fault, Mapping):
            return fault
    return None


def quote(value: str) -> str:
    """A QuickBooks query string literal: single quotes, backslash-escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


# A throttled QuickBooks answer may carry no Retry-After and costs a minute's wait, so the limiters
# count each grant a little longer than QuickBooks' minute: a request reaches QuickBooks (which starts
# its count then) a moment after its permits were granted.
WINDOW_SECONDS = 62.0


class QuickBooksClient:
    """Calls to ``/v3/company/{realm}``: every write carries ``requestid``; batch items count against the quota."""

    def __init__(
        self,
        config: QuickBooksConfig,
        *,
        token: TokenSource | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        limiter: RateLimiter | None = None,
        batch_limiter: RateLimiter | None = None,
    ) -> None:
        source = resolve_token_source(
            config.access_token,
            token,
            vendor="QuickBooks",
            setting=SETTING_TOKEN,
            what=CREDENTIAL_ADVICE,
        )
        self.config = config
        key = f"realm:{config.realm_id}"
        # QuickBooks: 500 requests/min and 40 batches/min per realm, shared by every credential of the app.
        self._batch_limiter = batch_limiter or limiter_for(
            "quickbooks-batch", key, config.max_batches_per_minute, window_seconds=WINDOW_SECONDS
        )
        http = make_client(
            f"{config.base_url.rstrip('/')}/v3/company/{config.realm_id}",
            headers={"Accept": "application/json"},
            timeout=config.timeout_seconds,
            transport=transport,
        )
        http.auth = BearerAuth(
            source, vendor="QuickBooks", setting=SETTING_TOKEN, reconnect="connect the company again"
        )
        self.session = ApiSession(
            vendor=VENDOR,
            setting=SETTING_REALM,
            policy=RetryPolicy(max_attempts=config.max_attempts),
            limiter=limiter
            or limiter_for("quickbooks", key, config.rate_limit_per_minute, window_seconds=WINDOW_SECONDS),
            http=http,
            sleep=sleep,
        )
        self.stats = self.session.stats
        self._slots = realm_slots(config.realm_id)

    def close(self) -> None:
        self.session.close()

    # ------------------------------------------------------------------ plumbing

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes | None = None,
        write: bool = False,
        items: int = 1,
        batch: bool = False,
    ) -> Any:
        """One request under the limiters; the decoded JSON answer.

        A write whose answer is lost after sending raises ``OutcomeUnknown`` and is not retried here.
        """
        query = {"minorversion": str(self.config.minor_version), **(params or {})}
        headers = {"Content-Type": "application/json"} if body is not None else None

        def once() -> Any:
            # QuickBooks counts every batch item as one request, on every attempt (a refused one
            # too). The retry loop takes one permit; the batch permit and the other items' permits
            # are taken here, together and just before sending, so they are logged when QuickBooks
            # counts them.
            if batch:
                self._batch_limiter.acquire()
            self.session.limiter.acquire(items - 1)
            try:
                with self._slots:
                    response = self.session.http.request(method, path, params=query, content=body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise TransientError(f"QuickBooks could not be reached ({type(exc).__name__})") from None
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if write:
                    raise OutcomeUnknown(
                        f"QuickBooks did not answer after the write was sent ({type(exc).__name__}); "
                        "look the record up before sending it again"
                    ) from None
                raise TransientError(f"QuickBooks did not answer ({type(exc).__name__})") from None
            # Read inside the retry loop: a truncated or non-JSON answer to a read is retried like a
            # 5xx; to a write it may hide a record that landed, so it becomes OutcomeUnknown.
            return decode_json(self._checked(response, write=write), vendor=VENDOR, write=write)

        return self.session.call(once, what=f"QuickBooks {method} {path}")

    def _checked(self, response: httpx.Response, *, write: bool) -> httpx.Response:
        status = response.status_code
        if status < 400:
            return response
        if status == 429:
            # QuickBooks: whether a 429 carries Retry-After is unconfirmed; without one, wait out the
            # per-minute window rather than hammering it with short backoffs.
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            wait = retry_after if retry_after is not None else self.config.throttle_wait_seconds
            raise TransientError("QuickBooks throttled the request (HTTP 429)", retry_after=wait, status=429)
        if status >= 500 and write:
            raise OutcomeUnknown(
                f"QuickBooks answered HTTP {status} to a write that may have landed; look it up before sending it again"
            )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        fault = _fault_of(payload)
        if status in (401, 403):
            detail = fault_text(fault)[0] if fault else ""
            raise ConfigError(
                f"QuickBooks refused the credential for company {self.config.realm_id} (HTTP {status}): reconnect "
                f"the company or set a valid {SETTING_TOKEN}, and check {SETTING_REALM}"
                + (f" ({detail})" if detail else ""),
                status=status,
            )
        if fault is not None and status == 400:
            text, codes = fault_text(fault)
            raise QuickBooksFault(f"QuickBooks refused the request: {text}", codes)
        raise error_from_status(
            status, vendor=VENDOR, setting=SETTING_REALM, detail=response.text, headers=response.headers
        )

    # ------------------------------------------------------------------ queries

    def query(self, statement: str) -> Mapping[str, Any]:
        payload = self.call("GET", "/query", params={"query": statement})
        result = payload.get("QueryResponse") if isinstance(payload, Mapping) else None
        if not isinstance(result, Mapping):
            raise PayloadError("QuickBooks answered a query without a QueryResponse")
        return result

    def query_all(self, entity: str, where: str) -> list[Mapping[str, Any]]:
        """Every row of ``SELECT * FROM entity WHERE ...``, paging by STARTPOSITION."""
        rows: list[Mapping[str, Any]] = []
        paging = PageNumbers(VENDOR, f"a {entity} query", first=1, step=MAX_RESULTS)
        while not paging.done:
            # Not SQL: QuickBooks' query language, with every literal escaped by ``quote``.
            statement = f"SELECT * FROM {entity} WHERE {where} STARTPOSITION {paging.number} MAXRESULTS {MAX_RESULTS}"  # noqa: S608
            result = self.query(statement)
            page = result.get(entity) or []
            if not isinstance(page, list):
                raise PayloadError(f"QuickBooks answered a {entity} query with something that is not a list")
            found = [row for row in page if isinstance(row, Mapping)]
            rows.extend(found)
            # A full page whose records are exactly those of the page before is the same page again.
            paging.advance(last=len(page) < MAX_RESULTS, signature=tuple(str(row.get("Id")) for row in found) or None)
        return rows


# ---------------------------------------------------------------------- names -> ids


@dataclass(frozen=True, slots=True)
class _Kind:
    entity: str
    field: str
    label: str


@dataclass(frozen=True, slots=True)
class _Need:
    kind: _Kind
    name: str
    where: str  # where in the mapping document the name comes from


CUSTOMER = _Kind("Customer", "DisplayName", "customer")
ITEM = _Kind("Item", "Name", "service item")
# QuickBooks: a sub-class is named "Parent:Child" in FullyQualifiedName (equal to Name at the top level).
CLASS = _Kind("Class", "FullyQualifiedName", "class")
DEPARTMENT = _Kind("Department", "Name", "department")


class NameResolver:
    """Names of vendors, customers, items, classes and departments to ids: one query per kind, cached."""

    def __init__(self, client: QuickBooksClient) -> None:
        self._client = client
        config = client.config
        self._payee = _Kind(config.name_of, "DisplayName", config.name_of.lower())
        self._cost_center_as = config.cost_center_as
        self._ids: dict[tuple[str, str], str | None] = {}
        self._lock = threading.Lock()

    def needs(self, line: Line) -> dict[str, _Need | None]:
        code = f"the mapping document's code '{line.code}'"
        person = f"the mapping document's people entry of '{line.person}'"
        cost_center = line.cost_center
        klass = line.ref(REF_QB_CLASS) or (cost_center if self._cost_center_as == "class" else None)
        department = line.ref(REF_QB_DEPARTMENT) or (cost_center if self._cost_center_as == "department" else None)
        item = line.ref(REF_QB_ITEM)
        return {
            "payee": _Need(self._payee, line.payee, f"{person} (its quickbooks {self._payee.label})"),
            "customer": _Need(CUSTOMER, line.ref(REF_QB_CUSTOMER) or line.client, f"{code} (its client or customer)"),
            "item": None if item is None else _Need(ITEM, item, f"{code} (its quickbooks item)"),
            "klass": None if klass is None else _Need(CLASS, klass, f"{code} (its class or cost center)"),
            "department": None
            if department is None
            else _Need(DEPARTMENT, department, f"{code} (its department or cost center)"),
        }

    def prefetch(self, lines: Iterable[Line]) -> None:
        """Look up every name these lines need and the cache lacks: one query per kind (per 100 names)."""
        wanted: dict[_Kind, set[str]] = {}
        with self._lock:
            for line in lines:
                for need in self.needs(line).values():
                    if need is not None and (need.kind.entity, need.name) not in self._ids:
                        wanted.setdefault(need.kind, set()).add(need.name)
        for kind, names in wanted.items():
            ordered = sorted(names)
            for start in range(0, len(ordered), NAMES_PER_QUERY):
                self._lookup(kind, ordered[start : start + NAMES_PER_QUERY])

    def _lookup(self, kind: _Kind, names: list[str]) -> None:
        listed = ",".join(quote(name) for name in names)
        rows = self._client.query_all(kind.entity, f"{kind.field} IN ({listed})")
        found: dict[str, str] = {}
        folded: dict[str, str] = {}
        for row in rows:
            value, ident = row.get(kind.field), row.get("Id")
            if isinstance(value, str) and ident is not None:
                found.setdefault(value, str(ident))
                folded.setdefault(value.casefold(), str(ident))
        with self._lock:
            for name in names:
                # QuickBooks compares names without regard to case; prefer an exact match when both exist.
                self._ids[(kind.entity, name)] = found.get(name) or folded.get(name.casefold())

    def ids_for(self, line: Line) -> QuickBooksIds:
        """The ids of one line; ``ConfigError`` naming every missing record and where to fix it."""
        needs = self.needs(line)
        self.prefetch([line])
        ids: dict[str, str | None] = {}
        missing: list[str] = []
        with self._lock:
            for slot, need in needs.items():
                if need is None:
                    ids[slot] = None
                    continue
                ident = self._ids.get((need.kind.entity, need.name))
                if ident is None:
                    missing.append(f"{need.kind.entity} '{need.name}' (from {need.where})")
                ids[slot] = ident
        if needs["item"] is None:
            missing.append(f"a service Item (the mapping document's code '{line.code}' names no quickbooks item)")
        if missing:
            raise ConfigError(
                f"QuickBooks company {self._client.config.realm_id} has no "
                + "; no ".join(missing)
                + ". Create the record in QuickBooks or correct the name in the mapping document."
            )
        return QuickBooksIds(
            payee=str(ids["payee"]),
            customer=str(ids["customer"]),
            item=str(ids["item"]),
            klass=ids["klass"],
            department=ids["department"],
        )
