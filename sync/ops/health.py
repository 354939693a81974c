"""`hourbridge health`: is the store reachable and migrated, and did every source succeed recently?"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, inspect, select

from connectors.errors import ConfigError
from sync.settings import Settings
from sync.store.db import head_revision, store_revision
from sync.store.tables import outbox, runs

# How many recent runs are read to find each source's last success; a worker writes one run per
# (source, account) job, so this covers many schedule intervals of a large deployment.
RUN_HISTORY = 2000


@dataclass(slots=True)
class SourceHealth:
    source: str
    last_success: datetime | None
    last_attempt: datetime | None
    last_error: str | None = None


@dataclass(slots=True)
class SinkHealth:
    """Lines of one sink whose latest write was refused, or sent without an answer, before the threshold."""

    sink: str
    failed: int = 0
    unknown: int = 0
    since: datetime | None = None
    last_error: str | None = None


@dataclass(slots=True)
class HealthReport:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    sources: list[SourceHealth] = field(default_factory=list)
    max_age_seconds: int | None = None
    sinks: list[SinkHealth] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reasons": self.reasons,
            "max_age_seconds": self.max_age_seconds,
            "sources": [
                {
                    "source": s.source,
                    "last_success": s.last_success.isoformat() if s.last_success else None,
                    "last_attempt": s.last_attempt.isoformat() if s.last_attempt else None,
                    "last_error": s.last_error,
                }
                for s in self.sources
            ],
            "sinks": [
                {
                    "sink": s.sink,
                    "failed": s.failed,
                    "unknown": s.unknown,
                    "since": s.since.isoformat() if s.since else None,
                    "last_error": s.last_error,
                }
                for s in self.sinks
            ],
        }


def schedule_interval(cron: str, now: datetime) -> timedelta:
    """The gap between the schedule's next two firings after ``now`` (cron in UTC)."""
    from croniter import croniter

    it = croniter(cron, now.astimezone(UTC))
    first = it.get_next(datetime)
    second = it.get_next(datetime)
    return timedelta(seconds=(second - first).total_seconds())


def _utc(value: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; they were written in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def source_health(engine: Engine) -> list[SourceHealth]:
    """Per source: the last finished run that pulled it without an error, and the last that tried."""
    found: dict[str, SourceHealth] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(runs.c.finished_at, runs.c.counts, runs.c.errors, runs.c.status)
            .where(runs.c.finished_at.is_not(None))
            .order_by(runs.c.id.desc())
            .limit(RUN_HISTORY)
        ).all()
    for finished_at, counts, errors, status in rows:
        finished = _utc(finished_at)
        pulled = {key.partition(":")[0] for key in (counts or {}).get("scopes", {})}
        failed: dict[str, str] = {}
        for error in errors or []:
            if error.get("source"):
                failed.setdefault(str(error["source"]), str(error.get("error", "")))
        for source in pulled | set(failed):
            health = found.setdefault(source, SourceHealth(source, None, None))
            if health.last_attempt is None or finished > health.last_attempt:
                health.last_attempt = finished
                health.last_error = failed.get(source)
            # An interrupted run may have stopped half-way through a scope: not a success.
            complete = source not in failed and status != "interrupted"
            if complete and (health.last_success is None or finished > health.last_success):
                health.last_success = finished
    return sorted(found.values(), key=lambda s: s.source)


def sink_health(engine: Engine, older_than: datetime) -> list[SinkHealth]:
    """Per sink: lines whose latest op failed, or was sent and never answered, before ``older_than``.

    Only each line's latest op counts, so a write that failed and then went through on a later run
    (a new op for the same line) no longer does.
    """
    latest = select(func.max(outbox.c.id).label("id")).group_by(outbox.c.sink, outbox.c.line_key).subquery()
    stamp = func.coalesce(outbox.c.done_at, outbox.c.sent_at, outbox.c.created_at)
    found: dict[str, SinkHealth] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(outbox.c.sink, outbox.c.state, stamp.label("at"), outbox.c.error)
            .join(latest, outbox.c.id == latest.c.id)
            .where(outbox.c.state.in_(("failed", "unknown", "sending")), stamp < older_than)
            .order_by(outbox.c.id)
        ).all()
    for sink, state, at, error in rows:
        health = found.setdefault(sink, SinkHealth(sink))
        if state == "failed":
            health.failed += 1
            health.last_error = error or health.last_error
        else:
            health.unknown += 1
        stamped = _utc(at)
        health.since = stamped if health.since is None else min(health.since, stamped)
    return sorted(found.values(), key=lambda s: s.sink)


def _sink_reasons(settings: Settings, sinks: list[SinkHealth]) -> list[str]:
    reasons: list[str] = []
    for sink in sinks:
        since = sink.since.isoformat(timespec="seconds") if sink.since else "?"
        detail = f"; last error: {sink.last_error}" if sink.last_error else ""
        reasons.append(
            f"{sink.sink}: {sink.failed} refused and {sink.unknown} unanswered writes older than "
            f"{settings.health_delivery_minutes} min (HOURBRIDGE_HEALTH_DELIVERY_MINUTES; oldest since {since}): "
            f"see `hourbridge status`{detail}"
        )
    return reasons


def check_health(
    settings: Settings,
    engine: Engine,
    *,
    now: datetime | None = None,
    database_only: bool = False,
    require_queue: bool = False,
) -> HealthReport:
    """Reachable and migrated (always); with ``database_only`` off, every source fresh enough and no
    accounting write refused or unanswered for longer than ``health_delivery_minutes`` too.

    A source that never ran is not reported as failing: a freshly deployed system has run nothing
    yet, and a probe must not restart it for that.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    report = HealthReport(ok=True)
    try:
        # The same check every command makes (sync.store.db): missing, unreachable or too new.
        current = store_revision(engine)
    except ConfigError as exc:
        return HealthReport(ok=False, reasons=[exc.message])
    head = head_revision()
    if current != head:
        report.reasons.append(f"database schema at {current or 'nothing'}, not {head}: run `hourbridge db upgrade`")
    if require_queue and "procrastinate_jobs" not in inspect(engine).get_table_names():
        report.reasons.append("the job queue's tables are missing: run `hourbridge db queue-upgrade`")
    if not report.reasons and not database_only:
        max_age = schedule_interval(settings.schedule, now) * settings.health_max_intervals
        report.max_age_seconds = int(max_age.total_seconds())
        report.sources = source_health(engine)
        for source in report.sources:
            if source.last_success is None or now - source.last_success > max_age:
                since = source.last_success.isoformat(timespec="seconds") if source.last_success else "never"
                detail = f"; last error: {source.last_error}" if source.last_error else ""
                report.reasons.append(
                    f"{source.source}: no successful run within {settings.health_max_intervals}x the schedule "
                    f"interval (HOURBRIDGE_SCHEDULE={settings.schedule!r}; last success: {since}){detail}"
                )
        report.sinks = sink_health(engine, now - timedelta(minutes=settings.health_delivery_minutes))
        report.reasons.extend(_sink_reasons(settings, report.sinks))
    report.ok = not report.reasons
    return report
