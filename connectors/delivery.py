"""Delivery values every accounting sink shares: lines, ops, receipts, holdings, idempotency keys, markers."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

OpKind = Literal["create", "update", "delete"]
# How the planner groups time into a sink's lines: one per entry, per person+code+day, or per month.
Granularity = Literal["entry", "day", "period"]
GRANULARITY_HELP = (
    "Lines delivered: entry = one per time entry; day = one per person, code and day; "
    "period = one per person, code and month."
)
ReceiptStatus = Literal["ok", "failed", "unknown"]
Now = Callable[[], datetime]

# Fixed forever: changing it would give every line a new key and deliver everything again.
KEY_NAMESPACE = uuid.UUID("0b6f1f6e-7d0c-5a8e-9a61-3c1d2e4f5a60")

# The marker that carries an idempotency key inside a vendor's free-text field. Neither QuickBooks
# TimeActivity nor Xero time entries/bill lines have an external-id field, so the text is the only
# place the key can travel and be found again.
MARKER_PREFIX = "[hb:"
_MARKER = re.compile(r"\[hb:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\]")

# Keys of ``Line.refs``: the accounting references of the line's code (names unless noted).
REF_QB_CUSTOMER = "quickbooks.customer"
REF_QB_ITEM = "quickbooks.item"
REF_QB_CLASS = "quickbooks.class"
REF_QB_DEPARTMENT = "quickbooks.department"
REF_XERO_CONTACT = "xero.contact"
REF_XERO_ACCOUNT = "xero.account"  # an account code such as "400"
REF_XERO_TAX_TYPE = "xero.tax_type"
REF_XERO_TRACKING_1 = "xero.tracking1"  # option of the first configured tracking category
REF_XERO_TRACKING_2 = "xero.tracking2"  # option of the second configured tracking category
REF_XERO_PROJECT = "xero.project"  # a project id, or a project name
REF_XERO_TASK = "xero.task"  # a task id, or a task name within the project
REF_XERO_USER = "xero.user"  # a project user's name, when it differs from the payee


def idempotency_key(sink: str, line_key: str, version: int) -> str:
    """The deterministic key of one version of one line at one sink (a 36-character uuid string).

    QuickBooks caps ``requestid`` at 36 characters inside batches and Xero ``Idempotency-Key`` at
    128, so a uuid string fits both.
    """
    return str(uuid.uuid5(KEY_NAMESPACE, f"{sink}\x1f{line_key}\x1f{version}"))


def call_key(keys: Sequence[str]) -> str:
    """One key for a call that carries several ops: the same set of ops always gives the same key."""
    return str(uuid.uuid5(KEY_NAMESPACE, "\x1f".join(sorted(keys))))


def marker(key: str) -> str:
    return f"{MARKER_PREFIX}{key}]"


def marked_keys(text: str | None) -> list[str]:
    """Every idempotency key marked in a vendor's free text."""
    return _MARKER.findall(text or "")


def marked_text(key: str, text: str | None, *, limit: int) -> str:
    """``[hb:<key>] text``, with the text cut so the whole stays within ``limit`` characters."""
    head = marker(key)
    if not text or not text.strip():
        return head
    room = limit - len(head) - 1
    body = " ".join(text.split())
    if room <= 0:
        return head
    if len(body) > room:
        body = body[: max(0, room - 1)].rstrip() + "…"
    return f"{head} {body}"


def billable_minutes(seconds: int) -> int:
    """Whole minutes to deliver for ``seconds``: half-up to the nearest minute, at least 1 when positive.

    Both sinks deliver minutes (QuickBooks as Hours + Minutes, Xero as minutes or hours to 4
    places), so they agree with each other and with reports that reconcile to the minute. A
    positive duration never rounds to nothing: Xero rejects 0 minutes, and a 20-second entry is
    still work someone did.
    """
    if seconds < 0:
        raise ValueError("seconds must not be negative")
    if seconds == 0:
        return 0
    return max(1, (seconds + 30) // 60)


def hours_from_minutes(minutes: int, *, places: int = 4) -> Decimal:
    """Hours as a Decimal rounded half-up to ``places`` decimal places (Xero ``unitdp=4``)."""
    quantum = Decimal(1).scaleb(-places)
    return (Decimal(minutes) / Decimal(60)).quantize(quantum, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class Line:
    """One accounting line a sink should hold: who, when, how long, which code, at what rate.

    ``line_key`` is the stable identity ("entry:asana:ws:123", "agg:person:code:2026-11-03");
    ``version`` grows with every change of content. ``payee`` is the name accounting knows the
    person by (a QuickBooks vendor or employee, a Xero contact or project user). ``refs`` holds
    the code's accounting references under the ``REF_*`` keys.
    """

    sink: str
    line_key: str
    version: int
    work_date: date
    period_end: date
    person: str
    payee: str
    code: str
    client: str
    seconds: int
    currency: str = "USD"
    billable: bool = False
    hourly_rate: Decimal | None = None
    cost_center: str | None = None
    refs: tuple[tuple[str, str], ...] = ()
    description: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.seconds, int) or isinstance(self.seconds, bool) or self.seconds < 0:
            raise ValueError(f"seconds must be a non-negative int ({self.line_key})")
        if self.version < 0:
            raise ValueError(f"version must not be negative ({self.line_key})")
        if self.hourly_rate is not None and not isinstance(self.hourly_rate, Decimal):
            raise TypeError("hourly_rate must be a Decimal (money is never a float)")
        object.__setattr__(self, "refs", tuple(sorted(self.refs)))

    @classmethod
    def with_refs(cls, refs: Mapping[str, str], **fields: Any) -> Line:
        """Build a line from a mapping of references (the usual way the planner has them)."""
        return cls(refs=tuple(refs.items()), **fields)

    def ref(self, name: str) -> str | None:
        for key, value in self.refs:
            if key == name:
                return value or None
        return None

    @property
    def minutes(self) -> int:
        return billable_minutes(self.seconds)


@dataclass(frozen=True, slots=True)
class Op:
    """One change to make at a sink. Updates and deletes name the remote record (and its version)."""

    kind: OpKind
    line: Line
    idempotency_key: str
    remote_id: str | None = None
    sync_token: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("create", "update", "delete"):
            raise ValueError(f"unknown op kind {self.kind!r}")
        if self.kind != "create" and not self.remote_id:
            raise ValueError(f"a {self.kind} needs the remote id recorded at delivery ({self.line.line_key})")

    @classmethod
    def for_line(cls, kind: OpKind, line: Line, *, remote_id: str | None = None, sync_token: str | None = None) -> Op:
        """An op keyed by ``idempotency_key(line.sink, line.line_key, line.version)``.

        A delete is a version of its own (the tombstone), so its key differs from the write it undoes.
        """
        key = idempotency_key(line.sink, line.line_key, line.version)
        return cls(kind, line, key, remote_id, sync_token)


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of one op. ``unknown``: sent, but the answer was lost; resolve it with ``Sink.find``."""

    idempotency_key: str
    kind: OpKind
    status: ReceiptStatus
    remote_id: str | None
    sync_token: str | None
    at: datetime
    error: str | None = None

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() != timedelta(0):
            raise ValueError("receipt time must be timezone-aware UTC")


@dataclass(frozen=True, slots=True)
class Holding:
    """One record a sink holds that carries our marker: what ``reconcile`` compares with the ledger.

    ``idempotency_key`` is the key in the record's ``[hb:<key>]`` marker (it names the op, and so
    the line and version, that wrote it); ``minutes`` is the duration the sink records;
    ``sync_token`` the record's version where the sink keeps one (QuickBooks), so a ledger that
    adopts the record can still change it.
    """

    idempotency_key: str
    remote_id: str
    work_date: date
    minutes: int
    sync_token: str | None = None


# --------------------------------------------------------------------------- wire encoding

_DECIMAL_TOKEN = re.compile(r'"\\u0000dec:(-?[0-9]+(?:\.[0-9]+)?)"')


def encode_json(payload: Any) -> bytes:
    """JSON with every Decimal written as an exact number literal (never through a float)."""

    def default(value: object) -> str:
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError("money must be finite")
            return "\x00dec:" + format(value, "f")
        if isinstance(value, (date, datetime)):
            return value.isoformat()
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")

    text = json.dumps(payload, default=default, ensure_ascii=False, separators=(",", ":"))
    return _DECIMAL_TOKEN.sub(r"\1", text).encode("utf-8")


def failed(op: Op, error: str, now: Now) -> Receipt:
    return Receipt(op.idempotency_key, op.kind, "failed", op.remote_id, op.sync_token, now(), error)


def unknown(op: Op, error: str, now: Now) -> Receipt:
    return Receipt(op.idempotency_key, op.kind, "unknown", op.remote_id, op.sync_token, now(), error)


def ok(op: Op, now: Now, *, remote_id: str | None, sync_token: str | None = None) -> Receipt:
    return Receipt(op.idempotency_key, op.kind, "ok", remote_id, sync_token, now())


def utc_now() -> datetime:
    return datetime.now(UTC)
