"""Contractors' bills as accounting holds them, in one neutral shape every bill reader returns (values only)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

from connectors.delivery import marked_keys

# Where a bill line says which project it is for (keys of ``BillLine.refs``).
BILL_REF_CLASS = "class"  # QuickBooks ClassRef name
BILL_REF_DEPARTMENT = "department"  # QuickBooks DepartmentRef name (of the bill)
BILL_REF_CUSTOMER = "customer"  # QuickBooks CustomerRef name
BILL_REF_ITEM = "item"  # QuickBooks ItemRef name, Xero ItemCode
BILL_REF_ACCOUNT = "account"  # Xero AccountCode
BILL_REF_TRACKING = "tracking:"  # + category name: the Xero tracking option of that category

# How a line counts hours: ``time`` lines carry them as their quantity; ``amount`` lines carry an
# amount only, which the check turns into hours at the contractor's agreed rate.
LineKind = Literal["time", "amount"]


@dataclass(frozen=True, slots=True)
class BillLine:
    """One line of a contractor's bill: what it says, how much, and the references naming its project."""

    description: str
    kind: LineKind
    amount: Decimal
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    refs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for name in ("amount", "quantity", "unit_price"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Decimal):
                raise TypeError(f"{name} must be a Decimal (money is never a float)")
        if self.kind == "time" and self.quantity is None:
            raise ValueError("a time line needs its quantity (hours)")
        object.__setattr__(self, "refs", tuple(sorted(self.refs)))

    def ref(self, name: str) -> str | None:
        for key, value in self.refs:
            if key == name:
                return value or None
        return None


@dataclass(frozen=True, slots=True)
class VendorBill:
    """A bill a contractor sent, as one accounting sink holds it.

    ``vendor`` is the name accounting knows the contractor by (a QuickBooks vendor, a Xero
    contact); ``vendor_id`` its id there. ``deleted`` is True for a bill deleted or voided in
    accounting that the sink still lists (Xero keeps them, with their status); QuickBooks never lists
    deleted bills, so there they are simply gone. ``updated_at`` is the sink's last-change time (UTC).
    """

    sink: str
    bill_id: str
    vendor: str
    vendor_id: str
    number: str
    bill_date: date
    due_date: date | None
    lines: tuple[BillLine, ...]
    total: Decimal
    currency: str
    status: str
    updated_at: datetime
    deleted: bool = False

    def __post_init__(self) -> None:
        if self.updated_at.tzinfo is None or self.updated_at.utcoffset() != timedelta(0):
            raise ValueError("updated_at must be timezone-aware UTC")
        if not isinstance(self.total, Decimal):
            raise TypeError("total must be a Decimal (money is never a float)")

    @property
    def key(self) -> str:
        """Unique among every sink's bills: ``<sink>:<bill id>``."""
        return f"{self.sink}:{self.bill_id}"


def written_by_hourbridge(*texts: str | None) -> bool:
    """True when any of ``texts`` carries our ``[hb:<key>]`` marker: a bill hourbridge wrote, not one it checks."""
    return any(marked_keys(text) for text in texts)


@runtime_checkable
class BillReader(Protocol):
    """A sink that can also read contractors' bills back (read-only; optional for sinks)."""

    def bills(self, start: date, end: date) -> Iterator[VendorBill]:
        """Every contractor bill dated ``start..end`` (inclusive), except the ones hourbridge wrote."""
