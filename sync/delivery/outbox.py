"""Delivery through the outbox: resolve open outcomes, enqueue the plan, send, and record every receipt."""

from __future__ import annotations

import fcntl
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, text

from connectors._redact import redact
from connectors.base import Sink
from connectors.delivery import Holding, Line, Op, Receipt, idempotency_key
from connectors.errors import ConfigError, CredentialRefused, HourbridgeError
from sync.delivery import adopt, periods
from sync.delivery.desired import Catalogs, Held, SinkSpec
from sync.delivery.lines import line_from_json, line_to_json
from sync.delivery.plan import CreditNeeded, Plan, PlannedOp, months_to_plan, plan_deliveries
from sync.settings import DeliverySettings
from sync.store import outbox as store_outbox
from sync.store.db import open_lock_file

log = structlog.get_logger("hourbridge.deliver")

# Ops per push: small enough that a crash leaves few outcomes to look up, large enough for batches.
CHUNK = 120
_ERRORS_KEPT = 5


@dataclass(slots=True)
class DeliveryResult:
    """What one delivery to one sink did."""

    sink: str
    planned: int = 0
    sent: int = 0
    ok: int = 0
    failed: int = 0
    unknown: int = 0
    found: int = 0  # outcomes left open by an earlier run that the sink showed had landed
    adopted: int = 0  # lines the sink already held under our markers (another ledger's writes), recorded, not sent
    resent: int = 0  # outcomes left open that had not landed, sent again under the same key
    waiting: int = 0
    capped: int = 0
    credits: list[CreditNeeded] = field(default_factory=list)
    held: dict[str, Held] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    skipped: str | None = None
    api: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "planned": self.planned,
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "unknown": self.unknown,
            "found": self.found,
            "adopted": self.adopted,
            "resent": self.resent,
            "waiting": self.waiting,
            "capped": self.capped,
            "credits_needed": [
                {"period": c.period, "person": c.person, "code": c.code, "seconds": c.seconds} for c in self.credits
            ],
            "held": {reason: {"entries": h.entries, "seconds": h.seconds} for reason, h in self.held.items()},
            "errors": list(self.errors),
            "skipped": self.skipped,
            "api": dict(self.api),
        }

    def note_error(self, message: str) -> None:
        if len(self.errors) < _ERRORS_KEPT and message not in self.errors:
            self.errors.append(message)


# --------------------------------------------------------------------------- one deliverer per sink

_LOCAL_LOCKS: dict[str, threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


@contextmanager
def sink_lock(engine: Engine, sink: str) -> Iterator[bool]:
    """Hold the one delivery lock of ``sink`` (yields False when another process holds it).

    The lock dies with its holder, so a killed deliverer never blocks the next run: a PostgreSQL
    session advisory lock, or an OS file lock beside a SQLite database (a thread lock in memory).
    """
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"hourbridge.deliver.{sink}".encode()).digest()[:8], "big", signed=True)
        with engine.connect() as conn:
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    conn.commit()
        return
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        with open_lock_file(database, f"deliver-{sink}") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with _LOCAL_GUARD:
        lock = _LOCAL_LOCKS.setdefault(f"{engine.url}:{sink}", threading.Lock())
    got = lock.acquire(blocking=False)
    try:
        yield got
    finally:
        if got:
            lock.release()


# --------------------------------------------------------------------------- the deliverer


class Deliverer:
    """Brings one sink to the desired state, effectively once.

    Every op is committed to the outbox (state ``pending``) before anything is sent and marked
    ``sending`` just before its call; its receipt closes it. An op left ``sending`` or ``unknown``
    (a crash, a timeout after sending) is looked up at the sink before anything is sent again.
    """

    def __init__(
        self,
        engine: Engine,
        sink: Sink,
        spec: SinkSpec,
        *,
        gates: DeliverySettings,
        catalogs: Catalogs,
        clock: Callable[[], datetime],
        run_id: int | None = None,
        chunk: int = CHUNK,
        progress: Callable[[str, int], None] | None = None,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.sink = sink
        self.spec = spec
        self.gates = gates
        self.catalogs = catalogs
        self._clock = clock
        self.run_id = run_id
        self.chunk = chunk
        self._progress = progress
        self._heartbeat = heartbeat

    def plan(self, touched: Iterable[str], as_of: datetime) -> Plan:
        with self.engine.connect() as conn:
            closed = periods.closed(conn)
            months = months_to_plan(conn, self.spec.sink, touched, closed)
            return plan_deliveries(
                conn,
                self.spec,
                months,
                closed=closed,
                catalogs=self.catalogs,
                gates=self.gates,
                as_of=as_of,
                max_ops=self.gates.max_ops_per_run,
            )

    def deliver(self, touched: Iterable[str], as_of: datetime) -> DeliveryResult:
        result = DeliveryResult(self.spec.sink)
        with sink_lock(self.engine, self.spec.sink) as mine:
            if not mine:
                result.skipped = "another process is delivering to this sink; the next run picks up these changes"
                log.info("delivery.skipped", sink=self.spec.sink, reason=result.skipped)
                return result
            try:
                self._deliver(touched, as_of, result)
            finally:
                result.api = self.sink.stats()
        for credit in result.credits:
            log.warning(
                "delivery.credit_needed",
                sink=credit.sink,
                period=credit.period,
                person=credit.person,
                code=credit.code,
                seconds=credit.seconds,
            )
        log.info("delivery.finished", sink=self.spec.sink, **{k: v for k, v in result.as_dict().items() if k != "held"})
        return result

    def _deliver(self, touched: Iterable[str], as_of: datetime, result: DeliveryResult) -> None:
        self._resolve_open(result)
        plan = self.plan(touched, as_of)
        if self._adopt(plan, result):
            plan = self.plan(touched, as_of)  # adopted lines now count as delivered
        result.planned = len(plan.ops)
        result.waiting, result.capped, result.credits = plan.waiting, plan.capped, plan.credits
        for by_reason in plan.held.values():
            for reason, held in by_reason.items():
                total = result.held.setdefault(reason, Held())
                total.entries += held.entries
                total.seconds += held.seconds
        self._enqueue(plan.ops)
        self._send_pending(result)

    # ------------------------------------------------------------------ outbox

    def _enqueue(self, ops: Sequence[PlannedOp]) -> None:
        """Commit every op with its idempotency key before any of them is sent."""
        if not ops:
            return
        now = self._clock()
        with self.engine.begin() as conn:
            store_outbox.add_pending(
                conn, [self._row(op, op.line, op.content_hash) | {"state": "pending", "created_at": now} for op in ops]
            )

    def _row(self, op: PlannedOp, line: Line, content_hash: str) -> dict[str, Any]:
        """The outbox columns of ``op`` writing ``line`` (the op's own line, or the one adopted in its place)."""
        return {
            "idempotency_key": idempotency_key(self.spec.sink, line.line_key, line.version),
            "sink": self.spec.sink,
            "line_key": line.line_key,
            "version": line.version,
            "kind": op.kind,
            "line": line_to_json(line, adjusts=op.adjusts, adjusts_period=op.adjusts_period),
            "content_hash": content_hash,
            "period": op.period,
            "target_remote_id": op.target_remote_id,
            "target_sync_token": op.target_sync_token,
            "attempts": 0,
            "run_id": self.run_id,
        }

    # ------------------------------------------------------------------ adoption

    def _adopt(self, plan: Plan, result: DeliveryResult) -> bool:
        """Take over what the sink already holds for the planned lines; True when anything was adopted.

        One read-back (``Sink.holdings``) per month with creates or updates, before anything is
        sent: a new, restored or copied ledger finds the records another ledger (or its own past)
        wrote under our key markers and records them instead of creating them again. A month whose
        read-back fails keeps its creates back for a later run (a create sent blind could duplicate).
        """
        adopted_any = False
        for label, ops in adopt.months_to_read(plan.ops).items():
            holdings = self._read_back(label, ops, result)
            if holdings is None:
                held_back = {id(op) for op in ops if op.kind == "create"}
                plan.ops = [op for op in plan.ops if id(op) not in held_back]
                result.waiting += len(held_back)
                continue
            with self.engine.connect() as conn:
                known = store_outbox.known_keys(conn, self.spec.sink, [h.idempotency_key for h in holdings])
            found = adopt.match(self.spec.sink, ops, adopt.unexplained(holdings, known))
            if not found:
                continue
            now = self._clock()
            with self.engine.begin() as conn:
                for taken in found:
                    store_outbox.record_adopted(
                        conn,
                        self._row(taken.op, taken.line, taken.content_hash),
                        remote_id=taken.holding.remote_id,
                        sync_token=taken.holding.sync_token,
                        now=now,
                    )
            result.adopted += len(found)
            adopted_any = True
            log.info("delivery.adopted", sink=self.spec.sink, period=label, records=len(found))
        return adopted_any

    def _read_back(self, label: str, ops: Sequence[PlannedOp], result: DeliveryResult) -> list[Holding] | None:
        """The month's records under our markers, or None when they could not be read."""
        start, end = periods.month_bounds(label)
        lines = [op.line for op in ops]
        try:
            return list(self.sink.holdings(start, end, lines))
        except CredentialRefused:
            raise
        except ConfigError:
            # A line the sink cannot place (Xero: a code naming an unknown project) spoils the read
            # of the whole month: read per code, and let the codes that still fail through — their
            # creates fail at the push with the same admin-readable message, and create nothing.
            pass
        except HourbridgeError as exc:
            result.note_error(f"could not read back what the sink holds for {label}: {redact(exc.message)}")
            return None
        holdings: list[Holding] = []
        by_code: dict[str, list[Line]] = {}
        for line in lines:
            by_code.setdefault(line.code, []).append(line)
        for group in by_code.values():
            try:
                holdings.extend(self.sink.holdings(start, end, group))
            except CredentialRefused:
                raise
            except ConfigError:
                continue
            except HourbridgeError as exc:
                result.note_error(f"could not read back what the sink holds for {label}: {redact(exc.message)}")
                return None
        return holdings

    def _resolve_open(self, result: DeliveryResult) -> None:
        """Settle ops an earlier run left ``sending`` or ``unknown``: found at the sink → done; else send again.

        Looked up ``chunk`` keys at a time with one ``Sink.find_many`` each (a crash mid-push leaves
        a whole push open; one lookup per op would cost a vendor read per op).
        """
        with self.engine.connect() as conn:
            rows = store_outbox.open_ops(conn, self.spec.sink)
        for start in range(0, len(rows), self.chunk):
            batch = rows[start : start + self.chunk]
            # A delete is safe to repeat (a vanished record is what it wanted), so it is not looked up.
            lookups = [row for row in batch if row.kind != "delete"]
            try:
                found = self._find_many(lookups)
            except HourbridgeError as exc:
                result.note_error(f"could not look up earlier writes: {redact(exc.message)}")
                continue
            with self.engine.begin() as conn:
                for row in batch:
                    receipt = found.get(row.idempotency_key)
                    if receipt is not None:
                        self._record(conn, row, replace(receipt, kind=row.kind))
                        result.found += 1
                    else:
                        # Not there (or a delete): send it again under the same key.
                        store_outbox.reset_to_pending(conn, row.id)
                        result.resent += 1
            log.info("delivery.resolved", sink=self.spec.sink, looked_up=len(lookups), landed=len(found))

    def _find_many(self, rows: Sequence[Any]) -> dict[str, Receipt]:
        if not rows:
            return {}
        keys = [row.idempotency_key for row in rows]
        lines = [line_from_json(row.line) for row in rows]
        return self.sink.find_many(keys, lines)

    def _send_pending(self, result: DeliveryResult) -> None:
        while True:
            with self.engine.begin() as conn:
                rows = store_outbox.pending_ops(conn, self.spec.sink, self.chunk)
                if not rows:
                    return
                # Marked before the call: a crash from here on leaves "sending", which is looked up first.
                store_outbox.mark_sending(conn, [r.id for r in rows], self._clock())
            by_key = {r.idempotency_key: r for r in rows}
            ops = [
                Op(
                    r.kind,
                    line_from_json(r.line),
                    r.idempotency_key,
                    remote_id=r.target_remote_id,
                    sync_token=r.target_sync_token,
                )
                for r in rows
            ]
            result.sent += len(ops)
            receipts: list[Receipt] = []
            try:
                for receipt in self.sink.push(ops):
                    receipts.append(receipt)
                    if self._progress is not None:
                        self._progress(f"{self.spec.sink}: delivering", 1)
            except HourbridgeError as exc:
                result.note_error(redact(exc.message))
                log.error("delivery.push_failed", sink=self.spec.sink, error=redact(exc.message))
            answered = set()
            with self.engine.begin() as conn:
                for receipt in receipts:
                    row = by_key.get(receipt.idempotency_key)
                    if row is None or receipt.idempotency_key in answered:
                        continue
                    answered.add(receipt.idempotency_key)
                    self._record(conn, row, receipt)
                    if receipt.status == "ok":
                        result.ok += 1
                    elif receipt.status == "failed":
                        result.failed += 1
                        result.note_error(redact(receipt.error or "refused"))
                    else:
                        result.unknown += 1
                missing = [r.id for key, r in by_key.items() if key not in answered]
                if missing:
                    store_outbox.mark_unanswered(conn, missing)
                    result.unknown += len(missing)
            if self._heartbeat is not None:
                self._heartbeat()
            if len(missing) == len(rows) and not receipts:
                return  # the sink is not answering at all: leave the rest for the next run

    def _record(self, conn: Connection, row: Any, receipt: Receipt) -> None:
        if receipt.status == "ok":
            store_outbox.close_op(
                conn,
                row,
                state="ok",
                remote_id=receipt.remote_id or row.target_remote_id,
                sync_token=receipt.sync_token,
                error=None,
                now=self._clock(),
            )
        else:
            store_outbox.close_op(
                conn,
                row,
                state="failed" if receipt.status == "failed" else "unknown",
                remote_id=None,
                sync_token=None,
                error=redact(receipt.error or ""),
                now=self._clock(),
            )
