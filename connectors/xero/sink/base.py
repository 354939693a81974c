"""XeroSink: what both Xero sinks share (one client, counters, close), and the choice between them by mode."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any, ClassVar

import httpx

from connectors._config import TokenSource
from connectors._ratelimit import RateLimiter
from connectors._retry import Sleep
from connectors.bills import VendorBill
from connectors.delivery import Holding, Line, Now, Op, OpKind, Receipt, utc_now
from connectors.xero.bills import XeroBills
from connectors.xero.client import XeroClient
from connectors.xero.config import XeroConfig


def split_remote(remote_id: str) -> tuple[str, str]:
    """Our remote ids are paths: ``projectId/timeEntryId`` (projects) or ``InvoiceID/LineItemID`` (bills)."""
    parent, _, child = remote_id.partition("/")
    if not parent or not child:
        raise ValueError(f"remote id {remote_id!r} is not of the form parent/child")
    return parent, child


class XeroSink:
    """Writes time to one Xero organisation: ``XeroSink(config)`` is the sink of ``config.mode``.

    Like ``pathlib.Path``, calling the base picks the concrete class: ``XeroProjectsSink`` (Projects
    API time entries) or ``XeroBillsSink`` (draft ACCPAY bills). Both share the client, so callers
    that only know "xero" never branch on the mode.
    """

    name: ClassVar[str] = "xero"
    _by_mode: ClassVar[dict[str, type[XeroSink]]] = {}

    def __init_subclass__(cls, *, mode: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        XeroSink._by_mode[mode] = cls

    def __new__(cls, config: XeroConfig, **kwargs: Any) -> XeroSink:
        if cls is XeroSink:
            cls = XeroSink._by_mode[config.mode]
        return super().__new__(cls)

    def __init__(
        self,
        config: XeroConfig,
        *,
        token: TokenSource | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        limiter: RateLimiter | None = None,
        now: Now = utc_now,
    ) -> None:
        self.config = config
        self.client = XeroClient(config, token=token, transport=transport, sleep=sleep, limiter=limiter)
        self._now = now

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> XeroSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        """API calls, retries, 429s and ``day_limit_remaining`` (from X-DayLimit-Remaining when Xero sent it)."""
        return self.client.counters()

    def bills(self, start: date, end: date) -> Iterator[VendorBill]:
        """Contractors' ACCPAY bills dated ``start..end`` (read-only; the draft bills hourbridge wrote are left out).

        Both modes read them: a contractor's bill is in the Accounting API whichever way time is written.
        """
        return XeroBills(self.client).bills(start, end)

    # The Sink protocol; each mode answers it its own way.

    def check(self) -> None:
        raise NotImplementedError

    def push(self, ops: Sequence[Op]) -> Iterator[Receipt]:
        raise NotImplementedError

    def find(self, idempotency_key: str, line: Line, kind: OpKind = "create") -> Receipt | None:
        raise NotImplementedError

    def find_many(self, keys: Sequence[str], lines: Sequence[Line]) -> dict[str, Receipt]:
        raise NotImplementedError

    def holdings(self, start: date, end: date, lines: Sequence[Line]) -> Iterator[Holding]:
        raise NotImplementedError
