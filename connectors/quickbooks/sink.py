"""QuickBooksSink: delivery ops written as TimeActivity records through batch calls, each keyed by requestid."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from typing import Any, ClassVar

import httpx

from connectors._config import TokenSource
from connectors._ratelimit import RateLimiter
from connectors._retry import Sleep
from connectors.bills import VendorBill
from connectors.delivery import (
    Holding,
    Line,
    Now,
    Op,
    OpKind,
    Receipt,
    billable_minutes,
    call_key,
    encode_json,
    failed,
    marked_keys,
    ok,
    unknown,
    utc_now,
)
from connectors.errors import ConfigError, OutcomeUnknown, PayloadError, QuickBooksFault, TransientError
from connectors.quickbooks.bills import QuickBooksBills
from connectors.quickbooks.client import (
    FAULT_OBJECT_NOT_FOUND,
    NameResolver,
    QuickBooksClient,
    fault_text,
    quote,
)
from connectors.quickbooks.config import QuickBooksConfig
from connectors.quickbooks.render import QuickBooksIds, render_batch, render_delete, render_time_activity

ENTITY = "TimeActivity"


class QuickBooksSink:
    """Writes TimeActivity records to one QuickBooks Online company.

    Ops go out in batches of ``batch_size`` (a lone op as a single write). Every write carries
    ``requestid``: the op's key for a single write, a key derived from the batch's op keys for a
    batch, so sending the same ops again replays QuickBooks' first answer instead of writing twice.
    """

    name: ClassVar[str] = "quickbooks"

    def __init__(
        self,
        config: QuickBooksConfig,
        *,
        token: TokenSource | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        limiter: RateLimiter | None = None,
        batch_limiter: RateLimiter | None = None,
        now: Now = utc_now,
    ) -> None:
        """``token`` overrides ``config.access_token``; pass a callable to hand out refreshed tokens."""
        self.config = config
        self.client = QuickBooksClient(
            config, token=token, transport=transport, sleep=sleep, limiter=limiter, batch_limiter=batch_limiter
        )
        self.names = NameResolver(self.client)
        self._now = now

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> QuickBooksSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> dict[str, int]:
        return self.client.stats.as_dict()

    def check(self) -> None:
        """Reach the company with the credential (ConfigError on 401/403 names the settings to fix)."""
        self.client.call("GET", f"/companyinfo/{self.config.realm_id}")

    # ------------------------------------------------------------------ rendering

    def ids_for(self, line: Line) -> QuickBooksIds:
        return self.names.ids_for(line)

    def render(self, op: Op) -> dict[str, Any]:
        """The TimeActivity body of one op (resolving names on first use)."""
        if op.kind == "delete":
            return render_delete(str(op.remote_id), op.sync_token)
        if op.kind == "update" and op.sync_token is None:
            raise ValueError(
                f"the update of {op.line.line_key} has no SyncToken; QuickBooks needs the one recorded at delivery"
            )
        return render_time_activity(
            op.line,
            self.ids_for(op.line),
            key=op.idempotency_key,
            name_of=self.config.name_of,
            include_description=self.config.include_description,
            remote_id=op.remote_id if op.kind == "update" else None,
            sync_token=op.sync_token if op.kind == "update" else None,
        )

    # ------------------------------------------------------------------ push

    def push(self, ops: Sequence[Op]) -> Iterator[Receipt]:
        ops = list(ops)
        # Deletes name no one, and an update without its SyncToken fails before any lookup.
        self.names.prefetch(op.line for op in ops if op.kind == "create" or (op.kind == "update" and op.sync_token))
        ready: list[tuple[Op, dict[str, Any]]] = []
        for op in ops:
            try:
                ready.append((op, self.render(op)))
            except (ConfigError, ValueError) as exc:
                yield failed(op, str(exc), self._now)
        size = self.config.batch_size
        for start in range(0, len(ready), size):
            chunk = ready[start : start + size]
            if len(chunk) == 1:
                yield self._single(*chunk[0])
            else:
                yield from self._batch(chunk)

    def _single(self, op: Op, body: dict[str, Any]) -> Receipt:
        params = {"requestid": op.idempotency_key}
        if op.kind == "delete":
            params["operation"] = "delete"
        try:
            payload = self.client.call("POST", "/timeactivity", params=params, body=encode_json(body), write=True)
        except OutcomeUnknown as exc:
            return unknown(op, exc.message, self._now)
        except QuickBooksFault as exc:
            return self._faulted(op, exc.message, exc.codes)
        except TransientError as exc:
            return failed(op, f"not sent: {exc.message}; send it again later", self._now)
        return self._receipt(op, payload.get(ENTITY) if isinstance(payload, Mapping) else None)

    def _batch(self, chunk: list[tuple[Op, dict[str, Any]]]) -> Iterator[Receipt]:
        by_bid = {str(i): op for i, (op, _) in enumerate(chunk)}
        body = render_batch([(str(i), op, activity) for i, (op, activity) in enumerate(chunk)])
        request_id = call_key([op.idempotency_key for op, _ in chunk])
        try:
            payload = self.client.call(
                "POST",
                "/batch",
                params={"requestid": request_id},
                body=encode_json(body),
                write=True,
                items=len(chunk),
                batch=True,
            )
        except OutcomeUnknown as exc:
            for op in by_bid.values():
                yield unknown(op, exc.message, self._now)
            return
        except QuickBooksFault as exc:
            for op in by_bid.values():
                yield failed(op, exc.message, self._now)
            return
        except TransientError as exc:
            for op in by_bid.values():
                yield failed(op, f"not sent: {exc.message}; send it again later", self._now)
            return
        answers = payload.get("BatchItemResponse") if isinstance(payload, Mapping) else None
        seen: set[str] = set()
        for answer in answers if isinstance(answers, list) else []:
            if not isinstance(answer, Mapping):
                continue
            bid = str(answer.get("bId", ""))
            item_op = by_bid.get(bid)
            if item_op is None or bid in seen:
                continue
            seen.add(bid)
            fault = answer.get("Fault")
            if isinstance(fault, Mapping):
                text, codes = fault_text(fault)
                yield self._faulted(item_op, f"QuickBooks refused the item: {text}", codes)
            else:
                yield self._receipt(item_op, answer.get(ENTITY))
        for bid, missing_op in by_bid.items():
            if bid not in seen:
                yield unknown(missing_op, "QuickBooks answered the batch without this item", self._now)

    def _receipt(self, op: Op, entity: object) -> Receipt:
        if not isinstance(entity, Mapping) or entity.get("Id") is None:
            return unknown(op, "QuickBooks answered without the TimeActivity it wrote", self._now)
        remote_id = str(entity["Id"])
        if op.kind == "delete":
            return ok(op, self._now, remote_id=remote_id)
        token = entity.get("SyncToken")
        return ok(op, self._now, remote_id=remote_id, sync_token=None if token is None else str(token))

    def _faulted(self, op: Op, message: str, codes: tuple[str, ...]) -> Receipt:
        if op.kind == "delete" and FAULT_OBJECT_NOT_FOUND in codes:
            # Deleting what is already gone is what the op wanted.
            return ok(op, self._now, remote_id=op.remote_id)
        return failed(op, message, self._now)

    # ------------------------------------------------------------------ lookup

    def find(self, idempotency_key: str, line: Line, kind: OpKind = "create") -> Receipt | None:
        """The TimeActivity whose Description carries ``[hb:<key>]``, if QuickBooks holds it.

        QuickBooks filters TimeActivity queries on Id, TxnDate and MetaData times only (Description
        and VendorRef are not filterable), so this reads the day's records with one query per 1000
        and matches the marker here.
        """
        where = f"TxnDate = {quote(line.work_date.isoformat())}"
        for row in self.client.query_all(ENTITY, where):
            description = row.get("Description")
            if idempotency_key in marked_keys(description if isinstance(description, str) else None):
                token = row.get("SyncToken")
                return Receipt(
                    idempotency_key,
                    kind,
                    "ok",
                    str(row.get("Id")),
                    None if token is None else str(token),
                    self._now(),
                )
        return None

    def find_many(self, keys: Sequence[str], lines: Sequence[Line]) -> dict[str, Receipt]:
        """The TimeActivity records carrying any of ``keys``: one query per 1000 over the lines' TxnDate span.

        The same read as ``find``, once for the whole batch: the span from the earliest to the latest
        work date of ``lines`` (a batch of open outcomes is usually one push, a few days wide).
        """
        wanted = set(keys)
        if not wanted or not lines:
            return {}
        first, last = min(line.work_date for line in lines), max(line.work_date for line in lines)
        where = f"TxnDate >= {quote(first.isoformat())} AND TxnDate <= {quote(last.isoformat())}"
        found: dict[str, Receipt] = {}
        for row in self.client.query_all(ENTITY, where):
            description = row.get("Description")
            for key in marked_keys(description if isinstance(description, str) else None):
                if key in wanted and key not in found:
                    token = row.get("SyncToken")
                    found[key] = Receipt(
                        key, "create", "ok", str(row.get("Id")), None if token is None else str(token), self._now()
                    )
        return found

    # ------------------------------------------------------------------ contractors' bills

    def bills(self, start: date, end: date) -> Iterator[VendorBill]:
        """Contractors' Bills dated ``start..end`` (read-only; those hourbridge wrote are left out)."""
        return QuickBooksBills(self.client).bills(start, end)

    # ------------------------------------------------------------------ read back

    def holdings(self, start: date, end: date, lines: Sequence[Line]) -> Iterator[Holding]:
        """Every TimeActivity dated ``start..end`` (TxnDate, inclusive) whose Description carries our marker.

        One query per 1000 records over the TxnDate range: QuickBooks cannot filter on Description,
        so records without a marker are read and skipped here, and ``lines`` are not needed to know
        where to look. Deleted records are never returned by QuickBooks queries. The key is the first
        marker of the Description (render writes exactly one, at its head); minutes are 60 * Hours +
        Minutes, plus Seconds rounded as ``billable_minutes`` does (render sends Hours/Minutes only,
        never StartTime/EndTime). A record seen twice, when a page boundary shifts under the query,
        is yielded once.
        """
        if end < start:
            return
        where = f"TxnDate >= {quote(start.isoformat())} AND TxnDate <= {quote(end.isoformat())}"
        seen: set[str] = set()
        for row in self.client.query_all(ENTITY, where):
            description = row.get("Description")
            keys = marked_keys(description if isinstance(description, str) else None)
            remote_id = str(row.get("Id", ""))
            if not keys or not remote_id or remote_id in seen:
                continue
            seen.add(remote_id)
            try:
                work_date = date.fromisoformat(str(row.get("TxnDate")))
            except ValueError:
                raise PayloadError(f"QuickBooks answered TimeActivity {remote_id} without a TxnDate") from None
            if not start <= work_date <= end:
                continue
            seconds = _whole(row.get("Hours")) * 3600 + _whole(row.get("Minutes")) * 60 + _whole(row.get("Seconds"))
            token = row.get("SyncToken")
            yield Holding(
                keys[0], remote_id, work_date, billable_minutes(seconds), None if token is None else str(token)
            )


def _whole(value: object) -> int:
    """A non-negative whole number from a QuickBooks duration element (absent or unreadable: 0)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0
