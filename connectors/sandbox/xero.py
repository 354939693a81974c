"""A local emulator of Xero's Projects time entries and Accounting bills, with tenant headers, limits and replays."""

from __future__ import annotations

import copy
import hmac
import json
import operator
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from connectors.delivery import encode_json
from connectors.sandbox._http import JSON_CONTENT_TYPE, DropConnection, Request, Response, with_headers
from connectors.sandbox._middleware import Clock, InFlightLimit
from connectors.sandbox._server import HostedSandbox, SandboxServer
from connectors.sandbox.oauth import CONNECTIONS, OAuthSandbox, issued_by

DEFAULT_TENANT = "b2d1a7a4-5d3e-4c55-9a43-7c2f0e1d9a10"
DEFAULT_TOKEN = "xero_sandbox_access_token"  # noqa: S105  (a fake credential the local emulator accepts)
PROJECTS_PATH = "/projects.xro/2.0"
ACCOUNTING_PATH = "/api.xro/2.0"
MAX_MINUTES = 59_940
MAX_KEY = 128
DAY_SECONDS = 86_400.0

# Route names, for ``fail_next`` and ``call_count``.
PROJECTS_LIST = "projects.list"
USERS_LIST = "projects.users"
TASKS_LIST = "projects.tasks"
TIME_LIST = "time.list"
TIME_CREATE = "time.create"
TIME_UPDATE = "time.update"
TIME_DELETE = "time.delete"
CONTACTS_LIST = "contacts.list"
TRACKING_LIST = "tracking.list"
INVOICES_LIST = "invoices.list"
INVOICES_PUT = "invoices.put"
INVOICES_POST = "invoices.post"
WRITES = (TIME_CREATE, TIME_UPDATE, TIME_DELETE, INVOICES_PUT, INVOICES_POST)

_NS = uuid.UUID("8f3a2c4e-1b6d-4e8f-9a0b-2c4d6e8f0a1b")
_WHERE_NAME = re.compile(r'Name\s*==\s*"((?:[^"\\]|\\.)*)"')

Json = dict[str, Any]


def _id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NS, f"{kind}:{name}"))


def _json(payload: Any, status: int = 200) -> Response:
    return Response(encode_json(payload), status=status, content_type=JSON_CONTENT_TYPE)


def _error(status: int, message: str) -> Response:
    titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests"}
    return _json({"Title": titles.get(status, "Error"), "Status": status, "Detail": message}, status)


class _Refused(Exception):
    def __init__(self, status: int, body: Json) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body


def _projects_error(message: str, field: str = "") -> _Refused:
    return _Refused(400, {"message": message, "modelState": {field: [message]} if field else {}})


class XeroSandbox(HostedSandbox):
    """Xero on 127.0.0.1: one organisation's projects, users, contacts, accounts and tracking, with controls.

    ``projects`` maps project names to their task names. Limits per tenant: ``rate_limit_per_minute``
    (60), ``day_limit`` (5000) and ``max_concurrency`` (5); a 429 carries ``Retry-After`` and
    ``X-Rate-Limit-Problem``, and every answer carries ``X-MinLimit-Remaining``,
    ``X-DayLimit-Remaining`` and ``X-AppMinLimit-Remaining``. ``Idempotency-Key`` replays the first
    answer. ``fail_after_commit`` stores a write and loses its answer.
    """

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT,
        token: str = DEFAULT_TOKEN,
        projects: Mapping[str, Iterable[str]] | None = None,
        users: Iterable[str] = (),
        contacts: Iterable[str] = (),
        accounts: Iterable[str] = (),
        tracking: Mapping[str, Iterable[str]] | None = None,
        rate_limit_per_minute: int | None = 60,
        day_limit: int | None = 5000,
        max_concurrency: int = 5,
        clock: Clock | None = None,
        oauth: OAuthSandbox | None = None,
    ) -> None:
        self._tenant = tenant_id
        self._token = token
        self._oauth = oauth  # also accept the access tokens this OAuth emulator issues for the tenant
        self._clock: Clock = clock or time.monotonic
        self._minute_limit = rate_limit_per_minute
        self._day_limit = day_limit
        self._lock = threading.RLock()
        self._minute_hits: deque[float] = deque()
        self._day_hits: deque[float] = deque()
        self._projects: dict[str, Json] = {}
        self._tasks: dict[str, dict[str, Json]] = {}
        for name, tasks in (projects or {}).items():
            pid = _id("project", name)
            self._projects[pid] = {"projectId": pid, "name": name, "status": "INPROGRESS", "currencyCode": "USD"}
            self._tasks[pid] = {
                _id(f"task:{pid}", t): {"taskId": _id(f"task:{pid}", t), "name": t, "projectId": pid,
                                         "chargeType": "TIME", "status": "ACTIVE"}
                for t in tasks
            }  # fmt: skip
        self._users = {_id("user", n): {"userId": _id("user", n), "name": n, "email": f"user{i}@example.com"}
                       for i, n in enumerate(users)}  # fmt: skip
        self._contacts = {_id("contact", n): {"ContactID": _id("contact", n), "Name": n, "ContactStatus": "ACTIVE"}
                          for n in contacts}  # fmt: skip
        self._accounts = set(accounts)
        self._tracking: dict[str, Json] = {
            _id("tracking", c): {
                "TrackingCategoryID": _id("tracking", c),
                "Name": c,
                "Status": "ACTIVE",
                "Options": [{"TrackingOptionID": _id(f"option:{c}", o), "Name": o, "Status": "ACTIVE"} for o in opts],
            }
            for c, opts in (tracking or {}).items()
        }
        self._entries: dict[str, Json] = {}
        self._invoices: dict[str, Json] = {}
        self._replies: dict[str, Response] = {}
        self._drop_after_commit: list[int | None] = []
        self._throttled_total = 0
        # Xero allows five calls in flight per tenant; the cap wraps everything, routing included.
        self._server = SandboxServer(
            error_factory=_error,
            wrap=lambda app: InFlightLimit(
                app,
                max_concurrency,
                key=lambda request: request.headers.get("xero-tenant-id", ""),
                refuse=lambda tenant: self._throttled(tenant, "concurrent", 1),
            ),
        )
        route = self._server.route
        route("GET", f"{PROJECTS_PATH}/Projects", self._guarded(self._list_projects), name=PROJECTS_LIST)
        route("GET", f"{PROJECTS_PATH}/ProjectsUsers", self._guarded(self._list_users), name=USERS_LIST)
        route("GET", f"{PROJECTS_PATH}/Projects/<projectId>/Tasks", self._guarded(self._list_tasks), name=TASKS_LIST)
        route("GET", f"{PROJECTS_PATH}/Projects/<projectId>/Time", self._guarded(self._list_time), name=TIME_LIST)
        route("POST", f"{PROJECTS_PATH}/Projects/<projectId>/Time", self._write(self._create_time), name=TIME_CREATE)
        entry = f"{PROJECTS_PATH}/Projects/<projectId>/Time/<timeEntryId>"
        route("PUT", entry, self._write(self._update_time), name=TIME_UPDATE)
        route("DELETE", entry, self._write(self._delete_time), name=TIME_DELETE)
        route("GET", f"{ACCOUNTING_PATH}/Contacts", self._guarded(self._list_contacts), name=CONTACTS_LIST)
        route("GET", f"{ACCOUNTING_PATH}/TrackingCategories", self._guarded(self._list_tracking), name=TRACKING_LIST)
        route("GET", f"{ACCOUNTING_PATH}/Invoices", self._guarded(self._list_invoices), name=INVOICES_LIST)
        route("PUT", f"{ACCOUNTING_PATH}/Invoices", self._write(self._put_invoices), name=INVOICES_PUT)
        route("POST", f"{ACCOUNTING_PATH}/Invoices", self._write(self._post_invoices), name=INVOICES_POST)
        if oauth is not None:
            # Xero serves GET /connections on the API host; it lists what the token's grant may use.
            route("GET", "/connections", oauth.connections_handler, name=CONNECTIONS)

    # -- controls --------------------------------------------------------------------------------

    @property
    def tenant_id(self) -> str:
        return self._tenant

    @property
    def projects_url(self) -> str:
        return self._server.root_url + PROJECTS_PATH

    @property
    def accounting_url(self) -> str:
        return self._server.root_url + ACCOUNTING_PATH

    def time_entries(self) -> list[Json]:
        with self._lock:
            return [copy.deepcopy(e) for e in self._entries.values()]

    def invoices(self) -> list[Json]:
        with self._lock:
            return [self._public_invoice(i) for i in self._invoices.values()]

    def call_count(self, route: str | None = None) -> int:
        return self._server.call_count(route)

    def fail_after_commit(self, n: int = 1, *, status: int | None = None) -> None:
        """Store the next ``n`` writes but lose the answer: the connection drops, or ``status`` comes back."""
        if n < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            self._drop_after_commit.extend([status] * n)

    def set_invoice_status(self, invoice_id: str, status: str) -> None:
        """Change a bill's status, as approving it in the Xero UI would."""
        with self._lock:
            self._invoices[invoice_id]["Status"] = status

    def project_id(self, name: str) -> str:
        return _id("project", name)

    def contact_id(self, name: str) -> str:
        return _id("contact", name)

    # -- contractors' bills (seeded by tests and the demo, as a bill a contractor sent and finance entered) --

    def add_bill(
        self,
        contact: str,
        bill_date: date,
        lines: Iterable[Mapping[str, Any]],
        *,
        due_date: date | None = None,
        number: str | None = None,
        status: str = "AUTHORISED",
        currency: str = "USD",
    ) -> str:
        """Store an ACCPAY bill from ``contact`` (a contact's name); its InvoiceID.

        Each line is a mapping: ``description``, ``quantity`` (default 1), ``unit_amount``,
        ``account`` (an account code), ``item_code`` and ``tracking`` ({category: option}).
        Accounts and tracking options must exist, as in Xero.
        """
        with self._lock:
            errors: list[str] = []
            raw: Json = {
                "Type": "ACCPAY", "Contact": {"ContactID": self.contact_id(contact)}, "InvoiceNumber": number,
                "Date": bill_date.isoformat(), "DueDate": due_date.isoformat() if due_date else None,
                "Status": status, "CurrencyCode": currency, "LineItems": [_bill_line(line) for line in lines],
            }  # fmt: skip
            saved = self._save_invoice(raw, True, errors)
            if saved is None:
                raise ValueError("; ".join(errors))
            return str(saved["InvoiceID"])

    def edit_bill(self, invoice_id: str, *, lines: Iterable[Mapping[str, Any]] | None = None, **fields: Any) -> None:
        """Change a stored bill as an edit in Xero would (any status, as finance may correct an entry)."""
        with self._lock:
            invoice = self._invoices[invoice_id]
            if lines is not None:
                errors: list[str] = []
                built = [self._line_item(_bill_line(line), n, set(), errors) for n, line in enumerate(lines, start=1)]
                if errors:
                    raise ValueError("; ".join(errors))
                invoice["LineItems"] = built
            for name, value in fields.items():
                invoice[name] = value.isoformat() if isinstance(value, date) else value
            invoice["_updated"] = datetime.now(UTC)

    def void_bill(self, invoice_id: str, status: str = "VOIDED") -> None:
        """Void (or, with ``status="DELETED"``, delete) a bill: Xero keeps listing it with that status."""
        if status not in ("VOIDED", "DELETED"):
            raise ValueError("status must be VOIDED or DELETED")
        with self._lock:
            self._invoices[invoice_id]["Status"] = status
            self._invoices[invoice_id]["_updated"] = datetime.now(UTC)

    # -- limits ----------------------------------------------------------------------------------

    def _remaining(self) -> dict[str, str]:
        now = self._clock()
        while self._minute_hits and self._minute_hits[0] <= now - 60.0:
            self._minute_hits.popleft()
        while self._day_hits and self._day_hits[0] <= now - DAY_SECONDS:
            self._day_hits.popleft()
        minute = (self._minute_limit or 10_000) - len(self._minute_hits)
        day = (self._day_limit or 1_000_000) - len(self._day_hits)
        return {
            "X-MinLimit-Remaining": str(max(0, minute)),
            "X-DayLimit-Remaining": str(max(0, day)),
            "X-AppMinLimit-Remaining": str(max(0, 10_000 - len(self._minute_hits))),
        }

    @property
    def throttled_count(self) -> int:
        """429s this organisation answered (minute, day and concurrency limits; never reset)."""
        with self._lock:
            return self._throttled_total

    def _throttled(self, tenant: str, problem: str, retry_after: int) -> Response:
        with self._lock:
            self._throttled_total += 1
            headers = self._remaining()
        headers.update({"Retry-After": str(retry_after), "X-Rate-Limit-Problem": problem})
        return with_headers(_error(429, f"Rate limit exceeded: {problem}"), headers)

    def _spend(self) -> Response | None:
        """Count one call; the 429 to answer when a limit is already spent."""
        with self._lock:
            self._remaining()  # ages out old hits
            now = self._clock()
            if self._day_limit is not None and len(self._day_hits) >= self._day_limit:
                wait = int(self._day_hits[0] + DAY_SECONDS - now) + 1
                return self._throttled(self._tenant, "day", wait)
            if self._minute_limit is not None and len(self._minute_hits) >= self._minute_limit:
                wait = max(1, int(self._minute_hits[0] + 60.0 - now) + 1)
                return self._throttled(self._tenant, "minute", wait)
            self._minute_hits.append(now)
            self._day_hits.append(now)
            return None

    def _check(self, request: Request) -> Response | None:
        token = request.bearer_token or ""
        static = hmac.compare_digest(token.encode(), self._token.encode())
        if not (static or issued_by(self._oauth, token, request.headers.get("xero-tenant-id"))):
            return _error(401, "AuthenticationUnsuccessful: the access token is not valid")
        tenant = request.headers.get("xero-tenant-id")
        if not tenant:
            return _error(400, "Xero-Tenant-Id header is missing")
        if tenant != self._tenant:
            return _error(403, "AuthorizationUnsuccessful: this connection may not use that tenant")
        return self._spend()

    def _finish(self, response: Response) -> Response:
        with self._lock:
            return with_headers(response, self._remaining())

    def _guarded(self, handler: Any) -> Any:
        def run(request: Request) -> Response:
            blocked = self._check(request)
            if blocked is not None:
                return blocked
            try:
                with self._lock:
                    return self._finish(handler(request))
            except _Refused as refused:
                return self._finish(_json(refused.body, refused.status))

        return run

    def _write(self, handler: Any) -> Any:
        def run(request: Request) -> Response:
            blocked = self._check(request)
            if blocked is not None:
                return blocked
            key = request.headers.get("idempotency-key")
            if key is not None and len(key) > MAX_KEY:
                return self._finish(_error(400, f"Idempotency-Key is longer than {MAX_KEY} characters"))
            with self._lock:
                slot = f"{self._tenant}:{key}" if key else None
                if slot is not None and slot in self._replies:
                    return self._finish(self._replies[slot])
                try:
                    response = handler(request)
                except _Refused as refused:
                    response = _json(refused.body, refused.status)
                if slot is not None:
                    self._replies[slot] = response
                if self._drop_after_commit:
                    status = self._drop_after_commit.pop(0)
                    if status is None:
                        raise DropConnection("sandbox dropped the connection after committing the write")
                    return _error(status, "The service did not answer in time")
                return self._finish(response)

        return run

    # -- projects ----------------------------------------------------------------------------------

    @staticmethod
    def _page(request: Request, items: list[Json]) -> Json:
        # Xero Projects: page must be a number greater than 0, pageSize a number from 1 to 500; any
        # other value is refused with 400 and the parameter named.
        page = _whole_arg(request, "page", 1, low=1, high=None, refuse=_projects_error)
        size = _whole_arg(request, "pageSize", 50, low=1, high=500, refuse=_projects_error)
        chunk = items[(page - 1) * size : page * size]
        count = max(1, -(-len(items) // size))
        return {"pagination": {"page": page, "pageSize": size, "pageCount": count, "itemCount": len(items)},
                "items": copy.deepcopy(chunk)}  # fmt: skip

    def _list_projects(self, request: Request) -> Response:
        states = set((request.arg("states") or "").split(",")) - {""}
        rows = [p for p in self._projects.values() if not states or p["status"] in states]
        # Xero Projects: projectIds is a comma-separated list of project ids (uuids).
        ids = {part.strip().lower() for part in (request.arg("projectIds") or "").split(",") if part.strip()}
        for ident in ids:
            try:
                uuid.UUID(ident)
            except ValueError:
                raise _projects_error(f"The value '{ident}' is not valid for projectIds.", "projectIds") from None
        if ids:
            rows = [p for p in rows if p["projectId"].lower() in ids]
        contact = (request.arg("contactID") or "").strip().lower()
        if contact:
            rows = [p for p in rows if str(p.get("contactId", "")).lower() == contact]
        return _json(self._page(request, rows))

    def _list_users(self, request: Request) -> Response:
        return _json(self._page(request, list(self._users.values())))

    def _project(self, request: Request) -> str:
        pid = request.params["projectId"]
        if pid not in self._projects:
            raise _Refused(404, {"message": f"Project {pid} not found"})
        return pid

    def _list_tasks(self, request: Request) -> Response:
        return _json(self._page(request, list(self._tasks[self._project(request)].values())))

    def _list_time(self, request: Request) -> Response:
        pid = self._project(request)
        rows = [e for e in self._entries.values() if e["projectId"] == pid]
        for name in ("userId", "taskId"):
            wanted = request.arg(name)
            if wanted:
                rows = [e for e in rows if e[name] == wanted]
        after, before = request.arg("dateAfterUtc"), request.arg("dateBeforeUtc")
        if after:
            rows = [e for e in rows if _instant(e["dateUtc"]) >= _instant(after)]
        if before:
            rows = [e for e in rows if _instant(e["dateUtc"]) <= _instant(before)]
        return _json(self._page(request, sorted(rows, key=lambda e: (e["dateUtc"], e["timeEntryId"]))))

    def _entry_body(self, request: Request, pid: str) -> Json:
        try:
            body = request.json_body()
        except ValueError:
            raise _projects_error("The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _projects_error("The request body must be an object")
        for field in ("userId", "taskId", "dateUtc", "duration"):
            if body.get(field) is None:
                raise _projects_error(f"The {field} field is required.", field)
        if body["userId"] not in self._users:
            raise _projects_error("The user is not a project user", "userId")
        if body["taskId"] not in self._tasks[pid]:
            raise _projects_error("The task does not belong to this project", "taskId")
        duration = body["duration"]
        if not isinstance(duration, int) or isinstance(duration, bool) or not 1 <= duration <= MAX_MINUTES:
            raise _projects_error(f"Duration must be between 1 and {MAX_MINUTES} minutes", "duration")
        try:
            _instant(str(body["dateUtc"]))
        except ValueError:
            raise _projects_error("dateUtc is not an ISO-8601 date-time", "dateUtc") from None
        return body

    def _create_time(self, request: Request) -> Response:
        pid = self._project(request)
        body = self._entry_body(request, pid)
        entry_id = str(uuid.uuid4())
        entry = {
            "timeEntryId": entry_id, "userId": body["userId"], "projectId": pid, "taskId": body["taskId"],
            "dateUtc": body["dateUtc"], "dateEnteredUtc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "duration": body["duration"], "description": body.get("description"), "status": "ACTIVE",
        }  # fmt: skip
        self._entries[entry_id] = entry
        return _json(entry)

    def _stored_entry(self, request: Request) -> Json:
        pid = self._project(request)
        entry = self._entries.get(request.params["timeEntryId"])
        if entry is None or entry["projectId"] != pid:
            raise _Refused(404, {"message": "Time entry not found"})
        if entry["status"] != "ACTIVE":
            raise _projects_error(f"A time entry in status {entry['status']} cannot be changed")
        return entry

    def _update_time(self, request: Request) -> Response:
        entry = self._stored_entry(request)
        body = self._entry_body(request, entry["projectId"])
        # Xero: leaving description out of an update sets it to null.
        entry.update(userId=body["userId"], taskId=body["taskId"], dateUtc=body["dateUtc"],
                     duration=body["duration"], description=body.get("description"))  # fmt: skip
        return Response(status=204, content_type=JSON_CONTENT_TYPE)

    def _delete_time(self, request: Request) -> Response:
        entry = self._stored_entry(request)
        del self._entries[entry["timeEntryId"]]
        return Response(status=204, content_type=JSON_CONTENT_TYPE)

    # -- accounting --------------------------------------------------------------------------------

    def _list_contacts(self, request: Request) -> Response:
        where = request.arg("where")
        rows = list(self._contacts.values())
        if where:
            names = {re.sub(r"\\(.)", r"\1", n).casefold() for n in _WHERE_NAME.findall(where)}
            rows = [c for c in rows if c["Name"].casefold() in names]
        return _json({"Contacts": copy.deepcopy(rows)})

    def _list_tracking(self, request: Request) -> Response:
        return _json({"TrackingCategories": copy.deepcopy(list(self._tracking.values()))})

    def _list_invoices(self, request: Request) -> Response:
        rows = list(self._invoices.values())
        where = request.arg("where")
        if where:
            matches = _invoice_where(where)  # read first: a clause it cannot read is refused even with no invoices
            rows = [i for i in rows if matches(i)]
        contact_ids, statuses = request.arg("ContactIDs"), request.arg("Statuses")
        if contact_ids:
            wanted = set(contact_ids.split(","))
            rows = [i for i in rows if i["Contact"]["ContactID"] in wanted]
        if statuses:
            wanted = set(statuses.split(","))
            rows = [i for i in rows if i["Status"] in wanted]
        since = request.headers.get("if-modified-since")
        if since:
            try:
                moment = _instant(since) if "T" in since else _instant(since + "T00:00:00Z")
            except ValueError:
                raise _accounting_error(f"If-Modified-Since '{since}' is not a date-time") from None
            rows = [i for i in rows if i["_updated"] > moment]
        numbers, ids = request.arg("InvoiceNumbers"), request.arg("IDs")
        if numbers:
            wanted = set(numbers.split(","))
            rows = [i for i in rows if i.get("InvoiceNumber") in wanted]
        if ids:
            wanted = set(ids.split(","))
            rows = [i for i in rows if i["InvoiceID"] in wanted]
        public = [self._public_invoice(i) for i in rows]
        if request.arg("page") is None:
            # Xero: an unpaged list leaves line items out; a page (up to 100 invoices) carries them.
            for invoice in public:
                invoice.pop("LineItems", None)
            return _json({"Invoices": public})
        page = _whole_arg(request, "page", 1, low=1, high=None, refuse=_accounting_error)
        size = _whole_arg(request, "pageSize", 100, low=1, high=1000, refuse=_accounting_error)
        count = max(1, -(-len(public) // size))
        return _json({"pagination": {"page": page, "pageSize": size, "pageCount": count, "itemCount": len(public)},
                      "Invoices": public[(page - 1) * size : page * size]})  # fmt: skip

    def _public_invoice(self, invoice: Json) -> Json:
        """An invoice as Xero's Accounting API answers it: ``/Date(ms+0000)/`` dates and the totals."""
        out = copy.deepcopy(invoice)
        out["Contact"] = copy.deepcopy(self._contacts.get(invoice["Contact"]["ContactID"], invoice["Contact"]))
        for field in ("Date", "DueDate"):
            day = invoice.get(field)
            if day is None:
                out.pop(field, None)  # Xero leaves out a date the invoice does not have; it never answers null
            if isinstance(day, str) and day:
                # Xero: dates travel as Microsoft JSON dates, with an ISO twin in ``<field>String``.
                out[field] = _ms_date(datetime.combine(date.fromisoformat(day[:10]), datetime.min.time(), tzinfo=UTC))
                out[f"{field}String"] = f"{day[:10]}T00:00:00"
        out["UpdatedDateUTC"] = _ms_date(invoice["_updated"])
        out.pop("_updated", None)
        lines = out.get("LineItems") or []
        for line in lines:
            line.setdefault("TaxAmount", Decimal("0.00"))  # the emulator knows no tax rates
        tax = sum((Decimal(str(line["TaxAmount"])) for line in lines), Decimal("0.00"))
        gross = sum((Decimal(str(line["LineAmount"])) for line in lines), Decimal("0.00"))
        # Inclusive line amounts already hold their tax; Exclusive and NoTax ones do not.
        subtotal = gross - tax if invoice.get("LineAmountTypes") == "Inclusive" else gross
        total = subtotal + tax
        paid = total if invoice["Status"] == "PAID" else Decimal("0.00")
        out.update(SubTotal=subtotal, TotalTax=tax, Total=total, AmountPaid=paid, AmountCredited=Decimal("0.00"),
                   AmountDue=total - paid)  # fmt: skip
        return out

    def _invoices_body(self, request: Request) -> list[Json]:
        try:
            body = json.loads(request.get_data().decode("utf-8"), parse_float=Decimal)
        except ValueError:
            raise _Refused(
                400, {"ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": "bad JSON"}
            ) from None
        invoices = body.get("Invoices") if isinstance(body, dict) else None
        if not isinstance(invoices, list):
            raise _Refused(400, {"ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": "no Invoices"})
        return invoices

    def _put_invoices(self, request: Request) -> Response:
        return self._save_invoices(request, create_only=True)

    def _post_invoices(self, request: Request) -> Response:
        return self._save_invoices(request, create_only=False)

    def _save_invoices(self, request: Request, *, create_only: bool) -> Response:
        results: list[Json] = []
        for raw in self._invoices_body(request):
            errors: list[str] = []
            saved = self._save_invoice(raw, create_only, errors) if isinstance(raw, dict) else None
            if saved is None:
                failed = copy.deepcopy(raw) if isinstance(raw, dict) else {}
                failed.update(HasErrors=True, StatusAttributeString="ERROR",
                              ValidationErrors=[{"Message": m} for m in errors or ["Invalid invoice"]])  # fmt: skip
                results.append(failed)
            else:
                results.append(self._public_invoice(saved))
        if request.arg(
            "summarizeErrors",
        ) not in (None, "false") and any(r.get("HasErrors") for r in results):
            elements = [r for r in results if r.get("HasErrors")]
            raise _Refused(400, {"ErrorNumber": 10, "Type": "ValidationException",
                                 "Message": "A validation exception occurred", "Elements": elements})  # fmt: skip
        return _json({"Id": str(uuid.uuid4()), "Status": "OK", "Invoices": results})

    def _save_invoice(self, raw: Json, create_only: bool, errors: list[str]) -> Json | None:
        invoice_id = raw.get("InvoiceID")
        current = self._invoices.get(str(invoice_id)) if invoice_id else None
        if invoice_id and (create_only or current is None):
            errors.append("An existing invoice cannot be updated with PUT" if create_only else "Invoice not found")
            return None
        status = raw.get("Status", current["Status"] if current else "DRAFT")
        if current is not None:
            if current["Status"] not in ("DRAFT", "SUBMITTED"):
                errors.append(f"This document cannot be edited as it has a status of {current['Status']}")
                return None
            if status == "DELETED":
                current["Status"] = "DELETED"
                return current
        if raw.get("Type") not in ("ACCPAY", "ACCREC"):
            errors.append("Invoice Type must be ACCPAY or ACCREC")
        contact = raw.get("Contact") or {}
        if str(contact.get("ContactID")) not in self._contacts:
            errors.append("A valid Contact is required")
        if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            errors.append(f"Status {status} is not valid when saving an invoice")
        day, due = _wire_day(raw.get("Date"), "Date", errors), _wire_day(raw.get("DueDate"), "DueDate", errors)
        items = raw.get("LineItems") or []
        kept = {li["LineItemID"] for li in (current or {}).get("LineItems", [])}
        lines: list[Json] = []
        for n, item in enumerate(items, start=1):
            lines.append(self._line_item(item, n, kept, errors))
        if errors:
            return None
        stored = {
            "InvoiceID": str(invoice_id or uuid.uuid4()), "Type": raw["Type"],
            "Contact": {"ContactID": contact["ContactID"]}, "InvoiceNumber": raw.get("InvoiceNumber"),
            "Date": day or date.today().isoformat(), "DueDate": due,
            "Status": status, "LineAmountTypes": raw.get("LineAmountTypes", "Exclusive"),
            "CurrencyCode": raw.get("CurrencyCode", "USD"), "LineItems": lines,
            "HasErrors": False, "StatusAttributeString": "OK", "_updated": datetime.now(UTC),
        }  # fmt: skip
        self._invoices[stored["InvoiceID"]] = stored
        return stored

    def _line_item(self, item: Any, n: int, kept: set[str], errors: list[str]) -> Json:
        if not isinstance(item, dict):
            errors.append(f"Line {n} is not an object")
            return {}
        if str(item.get("AccountCode")) not in self._accounts:
            errors.append(f"Account code '{item.get('AccountCode')}' is not a valid code for this document.")
        tracking = item.get("Tracking") or []
        if len(tracking) > 2:
            errors.append("A line item can have at most 2 tracking categories")
        for t in tracking:
            category = next((c for c in self._tracking.values() if c["Name"] == t.get("Name")), None)
            if category is None or t.get("Option") not in {o["Name"] for o in category["Options"]}:
                errors.append(f"Tracking option '{t.get('Option')}' of '{t.get('Name')}' is not valid")
        try:
            quantity = Decimal(str(item.get("Quantity", 1)))
            unit = Decimal(str(item.get("UnitAmount", 0)))
        except InvalidOperation:
            errors.append(f"Line {n} has a Quantity or UnitAmount that is not a number")
            quantity = unit = Decimal(0)
        if quantity.as_tuple().exponent < -4 or unit.as_tuple().exponent < -4:  # type: ignore[operator]
            errors.append(f"Line {n} has more than 4 decimal places (unitdp=4)")
        line_id = str(item.get("LineItemID")) if item.get("LineItemID") in kept else str(uuid.uuid4())
        out = {k: v for k, v in item.items() if k not in ("LineItemID", "LineAmount")}
        out.update(LineItemID=line_id, Quantity=quantity, UnitAmount=unit,
                   LineAmount=(quantity * unit).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))  # fmt: skip
        return out


_MS_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
# The invoice ``where`` clauses the emulator understands; anything else is refused, never ignored.
_WHERE_CLAUSE = re.compile(
    r'^\s*(?:(?P<field>Type|Status|InvoiceNumber)\s*==\s*"(?P<text>(?:[^"\\]|\\.)*)"'
    r'|Contact\.ContactID\s*==\s*(?:Guid|guid)\("(?P<guid>[0-9a-fA-F-]{36})"\)'
    r"|(?P<datefield>Date|DueDate)\s*(?P<op>>=|<=|==|>|<)\s*DateTime\(\s*(?P<y>\d{4})\s*,\s*(?P<m>\d{1,2})\s*,\s*(?P<d>\d{1,2})\s*\))\s*$"
)


def _text_is(field: str, text: str) -> Callable[[Json], bool]:
    return lambda invoice: str(invoice.get(field)) == text


def _contact_is(guid: str) -> Callable[[Json], bool]:
    return lambda invoice: str(invoice["Contact"]["ContactID"]).lower() == guid


_COMPARE: dict[str, Callable[[date, date], bool]] = {
    ">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt, "<": operator.lt,
}  # fmt: skip


def _date_is(field: str, op: str, day: date) -> Callable[[Json], bool]:
    compare = _COMPARE[op]
    return lambda invoice: bool(invoice.get(field)) and compare(date.fromisoformat(str(invoice[field])[:10]), day)


def _invoice_where(where: str) -> Callable[[Json], bool]:
    """A predicate for Xero's invoice ``where`` (clauses joined by AND); a clause it cannot read is a 400."""
    tests: list[Callable[[Json], bool]] = []
    for clause in re.split(r"\s+AND\s+", where.strip()):
        found = _WHERE_CLAUSE.match(clause)
        if found is None:
            raise _accounting_error(f"Unable to parse the where clause '{clause[:80]}'", "where")
        if found.group("field"):
            tests.append(_text_is(found.group("field"), re.sub(r"\\(.)", r"\1", found.group("text"))))
        elif found.group("guid"):
            tests.append(_contact_is(found.group("guid").lower()))
        else:
            try:
                day = date(int(found.group("y")), int(found.group("m")), int(found.group("d")))
            except ValueError:
                raise _accounting_error(f"'{clause[:80]}' is not a valid date", "where") from None
            tests.append(_date_is(found.group("datefield"), found.group("op"), day))
    return lambda invoice: all(test(invoice) for test in tests)


def _bill_line(line: Mapping[str, Any]) -> Json:
    """A seeded bill line in the wire shape ``_line_item`` reads."""
    item: Json = {"Description": line.get("description", ""), "Quantity": line.get("quantity", 1),
                  "UnitAmount": line.get("unit_amount", 0), "AccountCode": line.get("account")}  # fmt: skip
    if line.get("item_code"):
        item["ItemCode"] = line["item_code"]
    if line.get("tracking"):
        item["Tracking"] = [{"Name": name, "Option": option} for name, option in line["tracking"].items()]
    return item


def _wire_day(value: Any, field: str, errors: list[str]) -> str | None:
    """A date Xero accepts in a body (``YYYY-MM-DD``, with a time, or ``/Date(ms+0000)/``) as ``YYYY-MM-DD``."""
    if value is None or value == "":
        return None
    text = str(value)
    found = _MS_DATE.match(text)
    try:
        if found is not None:
            return datetime.fromtimestamp(int(found.group(1)) / 1000, tz=UTC).date().isoformat()
        return date.fromisoformat(text[:10]).isoformat()
    except (ValueError, OverflowError):
        errors.append(f"{field} '{text}' is not a valid date")
        return None


def _ms_date(value: datetime) -> str:
    """A Microsoft JSON date, as Xero's Accounting API writes them: ``/Date(1700000000000+0000)/``."""
    millis = int((value - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000)
    return f"/Date({millis}+0000)/"


def _accounting_error(message: str, field: str = "") -> _Refused:
    return _Refused(400, {"ErrorNumber": 10, "Type": "ValidationException", "Message": message})


def _whole_arg(
    request: Request, name: str, default: int, *, low: int, high: int | None, refuse: Callable[[str, str], _Refused]
) -> int:
    """A whole-number query parameter within ``low..high``; anything else is a 400 naming it."""
    text = request.arg(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"greater than {low - 1}" if high is None else f"between {low} and {high}"
        raise refuse(f"The value '{text}' is not valid for {name}: it must be a number {bound}.", name)
    return value


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
