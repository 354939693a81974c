"""A local emulator of QuickBooks Online: TimeActivity writes, contractors' Bills, queries, requestid, faults."""

from __future__ import annotations

import copy
import hmac
import json
import re
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from connectors.sandbox._http import DropConnection, Request, Response, json_response, with_headers
from connectors.sandbox._middleware import Clock, InFlightLimit, RateLimiter
from connectors.sandbox._server import HostedSandbox, SandboxServer
from connectors.sandbox.oauth import OAuthSandbox, issued_by

DEFAULT_REALM = "9130350000000001"
DEFAULT_TOKEN = "qbo_sandbox_access_token"  # noqa: S105  (a fake credential the local emulator accepts)
MAX_BATCH_ITEMS = 30
MAX_REQUEST_ID = 50
MAX_BATCH_REQUEST_ID = 36
MAX_BID = 10
# QuickBooks: at most 10 requests in flight per app and realm; the next one is refused with 429.
MAX_CONCURRENT = 10

# Route names, for ``fail_next`` and ``call_count``.
QUERY = "query"
QUERY_POST = "query.post"
ENTITY_GET = "entity.get"
TIME_ACTIVITY = "timeactivity.write"
TIME_ACTIVITY_GET = "timeactivity.get"
BATCH = "batch"
COMPANY_INFO = "companyinfo"

# The elements a TimeActivity may carry (Finance.xsd TimeActivity and its IntuitEntity base).
TIME_ACTIVITY_ELEMENTS = frozenset(
    {
        "Id", "SyncToken", "MetaData", "CustomField", "AttachableRef", "domain", "status", "sparse",
        "TimeZone", "TxnDate", "NameOf", "EmployeeRef", "VendorRef", "OtherNameRef", "CustomerRef",
        "DepartmentRef", "ItemRef", "ClassRef", "PayrollItemRef", "ProjectRef", "TimeChargeId",
        "BillableStatus", "Taxable", "HourlyRate", "CostRate", "Hours", "Minutes", "Seconds", "BreakHours",
        "BreakMinutes", "BreakSeconds", "StartTime", "EndTime", "Description", "HoursInEmployeeTimeZone",
    }
)  # fmt: skip
_NAME_FIELDS = {
    "Vendor": ("DisplayName",),
    "Employee": ("DisplayName",),
    "Customer": ("DisplayName", "FullyQualifiedName"),
    "Item": ("Name", "FullyQualifiedName"),
    "Class": ("Name", "FullyQualifiedName"),
    "Department": ("Name", "FullyQualifiedName"),
}
# QuickBooks: the Bill properties a query may filter on (the others are refused as not queryable).
BILL_QUERYABLE = frozenset({"Id", "TxnDate", "DueDate", "DocNumber", "VendorRef", "MetaData.CreateTime",
                            "MetaData.LastUpdatedTime"})  # fmt: skip
# The expense account contractors' bill lines are booked to (one, enough for bills seeded by hand).
EXPENSE_ACCOUNT = {"value": "60", "name": "Contractors"}
_ID_BASE = {"Vendor": 50, "Employee": 100, "Customer": 1, "Item": 200, "Class": 5000000000, "Department": 1}
# ``GET /{entity}/{id}`` for the named lists the sink resolves: URL segment -> entity.
_READABLE = {entity.lower(): entity for entity in _NAME_FIELDS}
# What python-quickbooks sends with ``POST /query``: the statement as the body, in this content type.
_QUERY_CONTENT_TYPES = ("application/text", "text/plain")

Json = dict[str, Any]


class _Fault(Exception):
    def __init__(self, status: int, code: str, message: str, detail: str = "", kind: str = "ValidationFault") -> None:
        super().__init__(message)
        self.status = status
        self.body = {
            "Fault": {"Error": [{"Message": message, "Detail": detail or message, "code": code}], "type": kind}
        }


def _fault_response(status: int, message: str) -> Response:
    codes = {401: ("3200", "AUTHENTICATION"), 403: ("3100", "AUTHORIZATION"), 429: ("003001", "ThrottleExceeded")}
    code, kind = codes.get(status, (str(status), "SystemFault"))
    text = f"message={kind}; errorCode={code}; statusCode={status}" if status in codes else message
    return json_response(
        {"Fault": {"Error": [{"Message": text, "Detail": message, "code": code}], "type": kind}}, status
    )


# --------------------------------------------------------------------------- query parsing

_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<what>\*|count\(\*\))\s+FROM\s+(?P<entity>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.*?))?"
    r"(?:\s+ORDERBY\s+[\w.]+(?:\s+(?:ASC|DESC))?)?"
    r"(?:\s+STARTPOSITION\s+(?P<start>\d+))?"
    r"(?:\s+MAXRESULTS\s+(?P<max>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(r"^\s*(?P<field>[\w.]+)\s*(?P<op>=|<=|>=|<|>|\bIN\b|\bLIKE\b)\s*(?P<value>.*)$", re.IGNORECASE)


def _literals(text: str) -> list[str]:
    """Single-quoted string literals with backslash escapes, in order."""
    values: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "'":
            i += 1
            continue
        i += 1
        buf: list[str] = []
        while i < len(text) and text[i] != "'":
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            buf.append(text[i])
            i += 1
        values.append("".join(buf))
        i += 1
    return values


def _split_and(where: str) -> list[str]:
    return _split_on(where, " AND ")


def _split_on(where: str, keyword: str) -> list[str]:
    """``where`` cut at ``keyword`` (spaces around it, any case) wherever it is outside a quoted literal."""
    width = len(keyword)
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    i = 0
    while i < len(where):
        ch = where[i]
        if ch == "\\" and quoted and i + 1 < len(where):
            buf.append(where[i : i + 2])
            i += 2
            continue
        if ch == "'":
            quoted = not quoted
        if not quoted and where[i : i + width].upper() == keyword:
            parts.append("".join(buf))
            buf = []
            i += width
            continue
        buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return [p for p in parts if p.strip()]


def _compare(actual: str | None, op: str, values: list[str]) -> bool:
    if actual is None:
        return False
    op = op.upper()
    if op == "IN":
        return actual.casefold() in {v.casefold() for v in values}
    if len(values) != 1:
        # One literal per comparison; a second one means a clause this parser does not know (the
        # real parser refuses it rather than using the first value).
        raise _Fault(400, "4000", "Error parsing query", "a comparison takes exactly one quoted value")
    value = values[0]
    if op == "LIKE":
        pattern = "^" + ".*".join(re.escape(part) for part in value.split("%")) + "$"
        return re.match(pattern, actual, re.IGNORECASE | re.DOTALL) is not None
    if op == "=":
        return actual.casefold() == value.casefold()
    return {"<": actual < value, ">": actual > value, "<=": actual <= value, ">=": actual >= value}[op]


class QuickBooksSandbox(HostedSandbox):
    """QuickBooks Online on 127.0.0.1: one company with named lists, storing the TimeActivities it is sent.

    Honours ``requestid`` (a repeat gets the first answer and writes nothing), checks SyncTokens
    (5010 Stale Object Error), caps batches at 30 items, throttles per realm counting batch items
    (429 ``ThrottleExceeded``; ``Retry-After`` only with ``send_retry_after``, since QuickBooks'
    behaviour there is unconfirmed) and can lose the answer of a write it has stored
    (``fail_after_commit``).
    """

    def __init__(
        self,
        *,
        realm_id: str = DEFAULT_REALM,
        token: str = DEFAULT_TOKEN,
        vendors: Iterable[str] = (),
        employees: Iterable[str] = (),
        customers: Iterable[str] = (),
        items: Iterable[str] = (),
        classes: Iterable[str] = (),
        departments: Iterable[str] = (),
        rate_limit_per_minute: int | None = 500,
        batches_per_minute: int | None = 40,
        send_retry_after: bool = False,
        clock: Clock | None = None,
        oauth: OAuthSandbox | None = None,
    ) -> None:
        self._realm = realm_id
        self._token = token
        self._oauth = oauth  # also accept the access tokens this OAuth emulator issues for the realm
        self._clock: Clock = clock or time.monotonic
        self._send_retry_after = send_retry_after
        self._lock = threading.RLock()
        self._rate = RateLimiter(rate_limit_per_minute, clock=self._clock)
        self._batch_rate = RateLimiter(batches_per_minute, clock=self._clock)
        self._units_accepted = 0
        self._throttled = 0
        self._lists: dict[str, dict[str, Json]] = {}
        for entity, names in (
            ("Vendor", vendors),
            ("Employee", employees),
            ("Customer", customers),
            ("Item", items),
            ("Class", classes),
            ("Department", departments),
        ):
            rows: dict[str, Json] = {}
            for i, name in enumerate(names):
                ident = str(_ID_BASE[entity] + i)
                row: Json = {"Id": ident, "SyncToken": "0", "Active": True}
                for field in _NAME_FIELDS[entity]:
                    row[field] = name
                if entity == "Item":
                    row["Type"] = "Service"
                rows[ident] = row
            self._lists[entity] = rows
        self._activities: dict[str, Json] = {}
        self._bills: dict[str, Json] = {}
        self._next_bill = 1001
        self._next_id = 1
        self._replies: dict[str, Response] = {}
        self._drop_after_commit: list[int | None] = []
        self._server = SandboxServer(
            base_path=f"/v3/company/{realm_id}",
            error_factory=_fault_response,
            inner=(self._in_flight_cap,),
        )
        self._server.route("GET", "/query", self._query, name=QUERY)
        self._server.route("POST", "/query", self._query_posted, name=QUERY_POST)
        readable = ",".join(sorted(_READABLE))
        self._server.route("GET", f"/<any({readable}):entity>/<id>", self._read_entity, name=ENTITY_GET)
        self._server.route("POST", "/timeactivity", self._write_one, name=TIME_ACTIVITY)
        self._server.route("GET", "/timeactivity/<id>", self._read_one, name=TIME_ACTIVITY_GET)
        self._server.route("POST", "/batch", self._batch, name=BATCH)
        self._server.route("GET", "/companyinfo/<id>", self._company, name=COMPANY_INFO)

    # -- controls --------------------------------------------------------------------------------

    @property
    def realm_id(self) -> str:
        return self._realm

    def time_activities(self) -> list[Json]:
        """What the company holds, in Id order (copies)."""
        with self._lock:
            return [copy.deepcopy(a) for _, a in sorted(self._activities.items(), key=lambda kv: int(kv[0]))]

    def call_count(self, route: str | None = None) -> int:
        return self._server.call_count(route)

    @property
    def throttled_count(self) -> int:
        """429s this company answered (minute, batch and concurrency limits; never reset)."""
        with self._lock:
            return self._throttled

    @property
    def units_accepted(self) -> int:
        """Requests the per-minute limit let through, each batch item counted as one (never reset)."""
        with self._lock:
            return self._units_accepted

    # -- contractors' bills (seeded by tests and the demo, as a contractor's bill entered in QuickBooks) --

    def add_bill(
        self,
        vendor: str,
        txn_date: date,
        lines: Iterable[Mapping[str, Any]],
        *,
        due_date: date | None = None,
        doc_number: str | None = None,
        department: str | None = None,
        private_note: str | None = None,
        currency: str = "USD",
    ) -> str:
        """Store a Bill of ``vendor`` (a Vendor's DisplayName); its Id.

        Each line is a mapping: ``amount`` (required unless ``qty`` and ``unit_price`` give it),
        ``description``, and either ``item`` with ``qty`` and ``unit_price`` (an item-based line) or
        none of them (an account-based line); ``class_`` and ``customer`` name a Class and a Customer.
        """
        with self._lock:
            ident = str(self._next_bill)
            self._next_bill += 1
            stamp = self._now()
            bill: Json = {
                "Id": ident, "SyncToken": "0", "domain": "QBO", "sparse": False,
                "MetaData": {"CreateTime": stamp, "LastUpdatedTime": stamp},
                "TxnDate": txn_date.isoformat(),
                "CurrencyRef": {"value": currency, "name": currency},
                "VendorRef": {"value": self.id_of("Vendor", vendor), "name": vendor},
                "APAccountRef": {"value": "33", "name": "Accounts Payable (A/P)"},
            }  # fmt: skip
            if doc_number is not None:
                bill["DocNumber"] = doc_number
            if private_note is not None:
                bill["PrivateNote"] = private_note
            if department is not None:
                bill["DepartmentRef"] = {"value": self.id_of("Department", department), "name": department}
            if due_date is not None:
                bill["DueDate"] = due_date.isoformat()
            self._set_bill_lines(bill, lines)
            self._bills[ident] = bill
            return ident

    def edit_bill(self, bill_id: str, *, lines: Iterable[Mapping[str, Any]] | None = None, **fields: Any) -> None:
        """Change a stored Bill as an edit in QuickBooks would: new lines and/or fields, SyncToken + 1."""
        with self._lock:
            bill = self._bills[bill_id]
            for name, value in fields.items():
                bill[name] = value.isoformat() if isinstance(value, date) else value
            if lines is not None:
                self._set_bill_lines(bill, lines)
            bill["SyncToken"] = str(int(bill["SyncToken"]) + 1)
            bill["MetaData"]["LastUpdatedTime"] = self._now()

    def delete_bill(self, bill_id: str) -> None:
        """Delete a Bill (QuickBooks queries never return deleted transactions)."""
        with self._lock:
            del self._bills[bill_id]

    def bills(self) -> list[Json]:
        with self._lock:
            return [copy.deepcopy(b) for _, b in sorted(self._bills.items(), key=lambda kv: int(kv[0]))]

    def _set_bill_lines(self, bill: Json, lines: Iterable[Mapping[str, Any]]) -> None:
        built: list[Json] = []
        total = Decimal(0)
        for number, spec in enumerate(lines, start=1):
            qty, price = spec.get("qty"), spec.get("unit_price")
            amount = Decimal(str(spec["amount"])) if "amount" in spec else Decimal(str(qty)) * Decimal(str(price))
            amount = amount.quantize(Decimal("0.01"))
            detail: Json = {}
            if spec.get("class_"):
                detail["ClassRef"] = {"value": self.id_of("Class", spec["class_"]), "name": spec["class_"]}
            if spec.get("customer"):
                detail["CustomerRef"] = {"value": self.id_of("Customer", spec["customer"]), "name": spec["customer"]}
            # QuickBooks answers money as JSON numbers.
            line: Json = {"Id": str(number), "LineNum": number, "Amount": float(amount)}
            if spec.get("description"):
                line["Description"] = spec["description"]
            if spec.get("item"):
                detail["ItemRef"] = {"value": self.id_of("Item", spec["item"]), "name": spec["item"]}
                if qty is not None:
                    detail["Qty"] = float(Decimal(str(qty)))
                if price is not None:
                    detail["UnitPrice"] = float(Decimal(str(price)))
                detail["BillableStatus"] = "NotBillable"
                line.update(DetailType="ItemBasedExpenseLineDetail", ItemBasedExpenseLineDetail=detail)
            else:
                detail["AccountRef"] = dict(EXPENSE_ACCOUNT)
                detail["BillableStatus"] = "NotBillable"
                line.update(DetailType="AccountBasedExpenseLineDetail", AccountBasedExpenseLineDetail=detail)
            built.append(line)
            total += amount
        bill["Line"] = built
        bill["TotalAmt"] = float(total)
        bill["Balance"] = float(total)

    def fail_after_commit(self, n: int = 1, *, status: int | None = None) -> None:
        """Store the next ``n`` writes (a batch is one) but lose the answer: the connection drops, or
        ``status`` (e.g. 504) comes back instead."""
        if n < 1:
            raise ValueError("n must be at least 1")
        with self._lock:
            self._drop_after_commit.extend([status] * n)

    def set_sync_token(self, activity_id: str, token: str) -> None:
        """Change a record's SyncToken, as an edit in the QuickBooks UI would."""
        with self._lock:
            self._activities[activity_id]["SyncToken"] = token

    def id_of(self, entity: str, name: str) -> str:
        for ident, row in self._lists[entity].items():
            if name in {row.get(f) for f in _NAME_FIELDS[entity]}:
                return ident
        raise KeyError(f"no {entity} named {name!r}")

    # -- plumbing --------------------------------------------------------------------------------

    def _in_flight_cap(self, app: Any) -> Any:
        def refuse(_key: str) -> Response:
            with self._lock:
                self._throttled += 1
            headers = {"Retry-After": "1"} if self._send_retry_after else {}
            return with_headers(_fault_response(429, "Too many concurrent requests for this realm"), headers)

        return InFlightLimit(app, MAX_CONCURRENT, key=lambda _request: self._realm, refuse=refuse)

    def _now(self) -> str:
        return datetime.now(UTC).astimezone().isoformat(timespec="milliseconds")

    def _answer(self, payload: Json, status: int = 200) -> Response:
        return json_response({**payload, "time": self._now()}, status)

    def _guard(self, request: Request, *, items: int = 1, batch: bool = False) -> Response | None:
        token = request.bearer_token or ""
        static = hmac.compare_digest(token.encode(), self._token.encode())
        if not (static or issued_by(self._oauth, token, self._realm)):
            return _fault_response(401, "Token invalid or expired")
        over: int | None = None
        for _ in range(items):
            over = self._rate.check(self._realm) or over
        if batch:
            over = self._batch_rate.check(self._realm) or over
        if over is not None:
            with self._lock:
                self._throttled += 1
            headers = {"Retry-After": str(over)} if self._send_retry_after else {}
            return with_headers(_fault_response(429, "Too many requests for this realm"), headers)
        with self._lock:
            self._units_accepted += items
        return None

    def _replayed(self, request: Request, limit: int) -> tuple[str | None, Response | None]:
        request_id = request.arg("requestid")
        if request_id is None:
            return None, None
        if len(request_id) > limit:
            raise _Fault(400, "2010", "Request has invalid or unsupported property", f"requestid longer than {limit}")
        return request_id, self._replies.get(request_id)

    def _committed(self, request_id: str | None, response: Response) -> Response:
        if request_id is not None and response.status_code < 500:
            self._replies[request_id] = response
        if self._drop_after_commit:
            status = self._drop_after_commit.pop(0)
            if status is None:
                raise DropConnection("sandbox dropped the connection after committing the write")
            return _fault_response(status, "The service did not answer in time")
        return response

    # -- handlers --------------------------------------------------------------------------------

    def _company(self, request: Request) -> Response:
        blocked = self._guard(request)
        if blocked is not None:
            return blocked
        return self._answer({"CompanyInfo": {"Id": "1", "CompanyName": "Sandbox Company", "Country": "US"}})

    def _read_one(self, request: Request) -> Response:
        blocked = self._guard(request)
        if blocked is not None:
            return blocked
        with self._lock:
            found = self._activities.get(request.params["id"])
            if found is None:
                return json_response(_Fault(400, "610", "Object Not Found").body, 400)
            return self._answer({"TimeActivity": copy.deepcopy(found)})

    def _query(self, request: Request) -> Response:
        blocked = self._guard(request)
        if blocked is not None:
            return blocked
        try:
            return self._answer({"QueryResponse": self._run_query(request.arg("query") or "")})
        except _Fault as fault:
            return json_response(fault.body, fault.status)

    def _query_posted(self, request: Request) -> Response:
        """``POST /query`` as python-quickbooks sends it: the statement is the body, ``application/text``."""
        blocked = self._guard(request)
        if blocked is not None:
            return blocked
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        if content_type not in _QUERY_CONTENT_TYPES:
            fault = _Fault(
                415, "4000", "Unsupported Media Type", f"a posted query is sent as application/text, not {content_type}"
            )
            return json_response(fault.body, fault.status)
        try:
            statement = request.get_data().decode("utf-8")
            return self._answer({"QueryResponse": self._run_query(statement)})
        except UnicodeDecodeError:
            return json_response(_Fault(400, "4000", "Error parsing query", "the body is not UTF-8").body, 400)
        except _Fault as fault:
            return json_response(fault.body, fault.status)

    def _read_entity(self, request: Request) -> Response:
        """``GET /{entity}/{id}`` for the named lists (vendor, customer, item, class, department, employee)."""
        blocked = self._guard(request)
        if blocked is not None:
            return blocked
        entity = _READABLE[request.params["entity"]]
        with self._lock:
            found = self._lists[entity].get(request.params["id"])
            if found is None:
                return json_response(
                    _Fault(400, "610", "Object Not Found", f"no {entity} {request.params['id']}").body, 400
                )
            return self._answer({entity: copy.deepcopy(found)})

    def _run_query(self, statement: str) -> Json:
        match = _QUERY.match(statement)
        if match is None:
            raise _Fault(400, "4000", "Error parsing query", f"QueryParserError: {statement[:80]}")
        entity = match.group("entity")
        where = match.group("where") or ""
        if len(_split_on(where, " OR ")) > 1:
            # QuickBooks: the query language has no OR (IN lists stand in for it); the parser refuses it.
            raise _Fault(
                400, "4000", "Error parsing query", 'QueryParserError: Encountered " <OR> "OR "" in the WHERE clause'
            )
        with self._lock:
            if entity == "TimeActivity":
                rows = [self._activities[k] for k in sorted(self._activities, key=int)]
            elif entity == "Bill":
                rows = [self._bills[k] for k in sorted(self._bills, key=int)]
            elif entity in self._lists:
                rows = list(self._lists[entity].values())
            else:
                raise _Fault(400, "4001", "Invalid query", f"unsupported entity {entity}")
            for condition in _split_and(where):
                parsed = _CONDITION.match(condition)
                if parsed is None:
                    raise _Fault(400, "4000", "Error parsing query", f"cannot read condition {condition!r}")
                field, op = parsed.group("field"), parsed.group("op")
                if entity == "TimeActivity" and field not in ("Id", "TxnDate", "MetaData.LastUpdatedTime"):
                    # QuickBooks: TimeActivity is filterable on Id, TxnDate and MetaData times only.
                    raise _Fault(400, "4001", "Invalid query", f"property '{field}' is not queryable")
                if entity == "Bill" and field not in BILL_QUERYABLE:
                    raise _Fault(400, "4001", "Invalid query", f"property '{field}' is not queryable")
                values = _literals(parsed.group("value"))
                rows = [r for r in rows if _compare(_field(r, field), op, values)]
            total = len(rows)
            start = int(match.group("start") or 1)
            size = min(int(match.group("max") or 100), 1000)
            page = [copy.deepcopy(r) for r in rows[start - 1 : start - 1 + size]]
        if match.group("what") != "*":
            return {"totalCount": total}
        result: Json = {"startPosition": start, "maxResults": len(page)}
        if page:
            result[entity] = page
        return result

    def _write_one(self, request: Request) -> Response:
        blocked = self._guard(request)
        if blocked is not None:
            return blocked
        with self._lock:
            try:
                request_id, replay = self._replayed(request, MAX_REQUEST_ID)
                if replay is not None:
                    return replay
                body = request.json_body()
                operation = request.arg("operation") or (
                    "update" if isinstance(body, dict) and "Id" in body else "create"
                )
                entity = self._apply(operation, body)
                response = self._answer({"TimeActivity": entity})
            except _Fault as fault:
                request_id = request.arg("requestid")
                response = json_response(fault.body, fault.status)
            except ValueError:
                request_id = None
                response = json_response(_Fault(400, "2010", "Request has invalid or unsupported property").body, 400)
            return self._committed(request_id, response)

    def _batch(self, request: Request) -> Response:
        try:
            body = request.json_body()
        except ValueError:
            body = None
        items = body.get("BatchItemRequest") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return json_response(_Fault(400, "2010", "Request has invalid or unsupported property").body, 400)
        blocked = self._guard(request, items=len(items), batch=True)
        if blocked is not None:
            return blocked
        if len(items) > MAX_BATCH_ITEMS:
            fault = _Fault(400, "4002", "Batch Size Exceeded", f"a batch holds at most {MAX_BATCH_ITEMS} items")
            return json_response(fault.body, 400)
        with self._lock:
            try:
                request_id, replay = self._replayed(request, MAX_BATCH_REQUEST_ID)
            except _Fault as fault:
                return json_response(fault.body, fault.status)
            if replay is not None:
                return replay
            answers: list[Json] = []
            for item in items:
                bid = str(item.get("bId", "")) if isinstance(item, dict) else ""
                try:
                    if not bid or (request_id is not None and len(bid) > MAX_BID):
                        raise _Fault(400, "2010", "Request has invalid or unsupported property", "bad bId")
                    if "Query" in item:
                        answers.append({"bId": bid, "QueryResponse": self._run_query(str(item["Query"]))})
                        continue
                    operation = str(item.get("operation", ""))
                    if operation not in ("create", "update", "delete") or "TimeActivity" not in item:
                        raise _Fault(400, "2010", "Request has invalid or unsupported property", "operation")
                    answers.append({"bId": bid, "TimeActivity": self._apply(operation, item["TimeActivity"])})
                except _Fault as fault:
                    answers.append({"bId": bid, **fault.body})
            return self._committed(request_id, self._answer({"BatchItemResponse": answers}))

    # -- the model -------------------------------------------------------------------------------

    def _apply(self, operation: str, body: Any) -> Json:
        if not isinstance(body, dict):
            raise _Fault(400, "2010", "Request has invalid or unsupported property", "body is not an object")
        unknown = sorted(set(body) - TIME_ACTIVITY_ELEMENTS)
        if unknown:
            raise _Fault(
                400,
                "2010",
                "Request has invalid or unsupported property",
                f"Property Name:{unknown[0]} specified is unsupported or invalid",
            )
        if operation == "delete":
            current = self._current(body)
            del self._activities[current["Id"]]
            return {"domain": "QBO", "status": "Deleted", "Id": current["Id"]}
        self._validate(body)
        stamp = self._now()
        if operation == "create":
            ident = str(self._next_id)
            self._next_id += 1
            record = {k: v for k, v in body.items() if k not in ("Id", "SyncToken", "MetaData")}
            record.update(Id=ident, SyncToken="0", domain="QBO", sparse=False)
            record["MetaData"] = {"CreateTime": stamp, "LastUpdatedTime": stamp}
            self._activities[ident] = self._decorate(record)
            return copy.deepcopy(self._activities[ident])
        current = self._current(body)
        record = {k: v for k, v in body.items() if k not in ("Id", "SyncToken", "MetaData")}
        record.update(Id=current["Id"], SyncToken=str(int(current["SyncToken"]) + 1), domain="QBO", sparse=False)
        record["MetaData"] = {"CreateTime": current["MetaData"]["CreateTime"], "LastUpdatedTime": stamp}
        self._activities[current["Id"]] = self._decorate(record)
        return copy.deepcopy(self._activities[current["Id"]])

    def _current(self, body: Json) -> Json:
        ident = str(body.get("Id", ""))
        current = self._activities.get(ident)
        if current is None:
            raise _Fault(400, "610", "Object Not Found", f"Another user has deleted this transaction (Id {ident})")
        if str(body.get("SyncToken")) != current["SyncToken"]:
            raise _Fault(
                400,
                "5010",
                "Stale Object Error",
                f"Stale Object Error : You and another user were working on the same thing. "
                f"The current SyncToken of TimeActivity {ident} is {current['SyncToken']}",
            )
        return current

    def _ref_id(self, body: Json, element: str, entity: str, *, required: bool) -> None:
        ref = body.get(element)
        if ref is None:
            if required:
                raise _Fault(
                    400, "2020", "Required param missing, need to supply the required value for the API", element
                )
            return
        if not isinstance(ref, dict) or str(ref.get("value", "")) not in self._lists[entity]:
            raise _Fault(400, "2500", "Invalid Reference Id", f"{element}: no {entity} with that id")

    def _validate(self, body: Json) -> None:
        name_of = body.get("NameOf")
        if name_of not in ("Vendor", "Employee"):
            raise _Fault(400, "2020", "Required param missing, need to supply the required value for the API", "NameOf")
        self._ref_id(body, f"{name_of}Ref", name_of, required=True)
        other = "EmployeeRef" if name_of == "Vendor" else "VendorRef"
        if other in body:
            raise _Fault(400, "2010", "Request has invalid or unsupported property", f"{other} with NameOf {name_of}")
        self._ref_id(body, "ItemRef", "Item", required=True)
        self._ref_id(body, "CustomerRef", "Customer", required=body.get("BillableStatus") == "Billable")
        self._ref_id(body, "ClassRef", "Class", required=False)
        self._ref_id(body, "DepartmentRef", "Department", required=False)
        try:
            date.fromisoformat(str(body.get("TxnDate", "")))
        except ValueError:
            raise _Fault(400, "2030", "Invalid or unsupported date", "TxnDate") from None
        if body.get("BillableStatus", "NotBillable") not in ("Billable", "NotBillable", "HasBeenBilled"):
            raise _Fault(400, "2030", "Invalid Enumeration", "BillableStatus")
        hours, minutes = body.get("Hours", 0), body.get("Minutes", 0)
        if not isinstance(hours, int) or not isinstance(minutes, int) or hours < 0 or not 0 <= minutes <= 59:
            raise _Fault(400, "2050", "Invalid time", "Hours must be a whole number and Minutes 0-59")
        if "Seconds" in body and not (isinstance(body["Seconds"], int) and 0 <= body["Seconds"] <= 59):
            raise _Fault(400, "2050", "Invalid time", "Seconds must be 0-59")
        if hours == 0 and minutes == 0 and not body.get("Seconds") and "StartTime" not in body:
            raise _Fault(400, "2050", "Invalid time", "a TimeActivity needs a duration")
        rate = body.get("HourlyRate")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))):
            raise _Fault(400, "2030", "Invalid number", "HourlyRate")
        if len(str(body.get("Description", ""))) > 4000:
            raise _Fault(400, "6000", "A business validation error has occurred", "Description is over 4000 characters")

    def _decorate(self, record: Json) -> Json:
        # QuickBooks fills in the names of the references it was given by id.
        for element, entity in (
            ("VendorRef", "Vendor"),
            ("EmployeeRef", "Employee"),
            ("CustomerRef", "Customer"),
            ("ItemRef", "Item"),
            ("ClassRef", "Class"),
            ("DepartmentRef", "Department"),
        ):
            ref = record.get(element)
            if isinstance(ref, dict):
                row = self._lists[entity].get(str(ref.get("value")))
                if row is not None:
                    ref["name"] = row[_NAME_FIELDS[entity][0]]
        return record


def _field(row: Mapping[str, Any], path: str) -> str | None:
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    if value is None:
        return None
    if isinstance(value, Mapping) and "value" in value:
        # QuickBooks: a reference (VendorRef, CustomerRef...) is filtered by its id.
        return str(value["value"])
    return value if isinstance(value, str) else json.dumps(value)
