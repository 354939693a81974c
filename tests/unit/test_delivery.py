"""Desired-state delivery: plan, outbox, receipts, crashes, gates and closed periods, against a sink in memory."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from sync.delivery import periods
from sync.delivery.lines import ADJUSTMENT_PREFIX
from sync.run.context import RunContext
from sync.run.mapping import adopt_mapping, load_mapping
from sync.run.pipeline import run_sync
from sync.run.reconcile import reconcile_month
from sync.settings import DeliverySettings, QuickBooksSettings, Settings
from sync.store.tables import delivered_lines, outbox
from tests.fakes import Crash, ListSource, MemorySink

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

DOCUMENT = """\
version: 1
codes:
  WEB:
    name: Website
    client: Northwind
    cost_center: CC-1
    billable: true
    rates: [{rate: "95.00", currency: USD, effective_from: 2020-01-01}]
    quickbooks: {customer: Northwind, item: Hours, class: Web}
people:
  - contractor: Zoë Müller
    email: zoe@example.com
    quickbooks_vendor: Zoë Müller Consulting
rules:
  - {id: web, priority: 1, code: WEB, match: {project: Website}}
"""


@pytest.fixture
def world(tmp_path: Path, engine: Engine) -> dict[str, Any]:
    (tmp_path / "rules.yaml").write_text(DOCUMENT, encoding="utf-8")
    return {"tmp": tmp_path, "engine": engine, "source": ListSource(), "sink": MemorySink()}


def run(world: dict[str, Any], *, granularity: str = "day", as_of: datetime = AS_OF, **delivery: Any) -> Any:
    settings = Settings(
        database_url="sqlite://",
        mappings_file=world["tmp"] / "rules.yaml",
        output_dir=world["tmp"] / "out",
        start_date=date(2026, 9, 1),
        lookback_days=120,
        quickbooks=QuickBooksSettings(realm_id="1", granularity=granularity),
        delivery=DeliverySettings(**({"asana_gate": "none"} | delivery)),
    )
    result = run_sync(
        settings,
        sources={"asana": world["source"]},
        sinks={"quickbooks": world["sink"]},
        engine=world["engine"],
        as_of=as_of,
        clock=lambda: as_of,
        write_reports=False,
    )
    return result.deliveries["quickbooks"]


def minutes_by_key(sink: MemorySink) -> dict[str, int]:
    return {line.line_key: line.seconds // 60 for line in sink.lines()}  # type: ignore[attr-defined]


def test_day_lines_are_created_once_and_a_rerun_sends_nothing(world: dict[str, Any]) -> None:
    source = world["source"]
    source.put("e1", 30, date(2026, 11, 3))
    source.put("e2", 45, date(2026, 11, 3))
    source.put("e3", 60, date(2026, 11, 4))
    first = run(world)
    assert (first.planned, first.ok, first.failed) == (2, 2, 0)
    sink = world["sink"]
    lines = sorted(sink.lines(), key=lambda line: line.work_date)
    assert [(line.work_date.day, line.seconds) for line in lines] == [(3, 75 * 60), (4, 3600)]
    assert {line.payee for line in lines} == {"Zoë Müller Consulting"}
    assert lines[0].ref("quickbooks.customer") == "Northwind" and lines[0].hourly_rate is not None
    pushes = len(sink.pushes)
    second = run(world)
    assert (second.planned, second.sent) == (0, 0)
    assert len(sink.pushes) == pushes


def test_edit_updates_and_deletion_deletes(world: dict[str, Any]) -> None:
    source, sink = world["source"], world["sink"]
    source.put("e1", 30, date(2026, 11, 3))
    source.put("e2", 60, date(2026, 11, 4))
    run(world, granularity="entry")
    assert len(sink.records) == 2
    source.put("e1", 50, date(2026, 11, 3))
    del source.entries["e2"]
    result = run(world, granularity="entry")
    assert (result.planned, result.ok) == (2, 2)
    assert sorted(minutes_by_key(sink).values()) == [50]
    with world["engine"].connect() as conn:
        kinds = sorted(conn.execute(select(outbox.c.kind, outbox.c.version).order_by(outbox.c.id)).all())
    assert kinds == [("create", 1), ("create", 1), ("delete", 2), ("update", 2)]


def test_unmapped_time_is_held_and_the_rest_delivered(world: dict[str, Any]) -> None:
    source, sink = world["source"], world["sink"]
    source.put("e1", 30, date(2026, 11, 3))
    source.put("x1", 20, date(2026, 11, 3), project="Nowhere")
    result = run(world, granularity="entry")
    assert result.ok == 1 and len(sink.records) == 1
    assert result.held["unmapped"].entries == 1 and result.held["unmapped"].seconds == 1200


def test_approval_gate_holds_until_approved(world: dict[str, Any]) -> None:
    source, sink = world["source"], world["sink"]
    source.put("e1", 30, date(2026, 11, 3), approval_status="SUBMITTED")
    source.put("e2", 40, date(2026, 11, 3), approval_status="APPROVED")
    result = run(world, granularity="entry", asana_gate="approved")
    assert result.ok == 1 and result.held["awaiting approval"].entries == 1
    source.put("e1", 30, date(2026, 11, 3), approval_status="APPROVED")
    result = run(world, granularity="entry", asana_gate="approved")
    assert result.ok == 1 and len(sink.records) == 2


def test_settle_delay_holds_recent_days(world: dict[str, Any]) -> None:
    source = world["source"]
    source.put("e1", 30, date(2026, 11, 19))  # ended 12 hours before as_of
    source.put("e2", 30, date(2026, 11, 17))
    result = run(world, granularity="entry", asana_gate="settled", settle_hours=24)
    assert result.ok == 1 and result.held["not settled"].entries == 1


def test_crash_between_send_and_receipt_creates_no_duplicate(world: dict[str, Any]) -> None:
    source, sink = world["source"], world["sink"]
    source.put("e1", 30, date(2026, 11, 3))
    source.put("e2", 30, date(2026, 11, 4))
    sink.crash_after_commit = True
    with pytest.raises(Crash):
        run(world)
    assert len(sink.records) == 2  # landed, but no receipt was recorded
    with world["engine"].connect() as conn:
        states = conn.execute(select(outbox.c.state)).scalars().all()
    assert sorted(states) == ["sending", "sending"]
    result = run(world)
    assert (result.found, result.resent, result.planned) == (2, 0, 0)
    assert len(sink.records) == 2
    assert run(world).sent == 0


def test_outbox_row_committed_before_send_is_sent_once_after_a_crash(world: dict[str, Any]) -> None:
    source, sink = world["source"], world["sink"]
    source.put("e1", 30, date(2026, 11, 3))

    class Dying(MemorySink):
        def push(self, ops):  # type: ignore[no-untyped-def]
            raise Crash("killed before sending")

    world["sink"] = Dying()
    with pytest.raises(Crash):
        run(world)
    world["sink"] = sink
    result = run(world)
    assert result.resent == 1 and result.ok == 1 and len(sink.records) == 1
    with world["engine"].connect() as conn:
        assert conn.execute(select(func.count()).select_from(outbox)).scalar_one() == 1


def test_refused_write_is_retried_under_a_new_version_key(world: dict[str, Any]) -> None:
    source, sink = world["source"], world["sink"]
    source.put("e1", 30, date(2026, 11, 3))
    sink.refuse = {"x"}
    run(world, granularity="entry")
    key = next(iter(minutes_by_key(sink)))
    sink.records.clear()
    sink.refuse = {key}
    with world["engine"].begin() as conn:
        conn.execute(delivered_lines.delete())
    first = run(world, granularity="entry")
    assert first.failed == 1 and first.errors == ["refused"]
    sink.refuse = set()
    second = run(world, granularity="entry")
    assert second.ok == 1
    with world["engine"].connect() as conn:
        keys = conn.execute(select(outbox.c.idempotency_key, outbox.c.state).order_by(outbox.c.id)).all()
    assert [state for _, state in keys] == ["ok", "failed", "ok"]
    assert len({key for key, _ in keys}) == 3


def test_closed_period_change_becomes_an_adjustment_in_the_next_open_month(world: dict[str, Any]) -> None:
    source, sink, engine = world["source"], world["sink"], world["engine"]
    source.put("e1", 30, date(2026, 10, 14))
    run(world)
    assert periods.close(engine, "2026-10", by="finance", reason="month end", now=AS_OF)
    source.put("e2", 45, date(2026, 10, 15))  # late time in the closed month
    source.put("e1", 40, date(2026, 10, 14))  # and an edit of delivered time
    result = run(world)
    original = [line for line in sink.lines() if not line.line_key.startswith(ADJUSTMENT_PREFIX)]
    adjustments = [line for line in sink.lines() if line.line_key.startswith(ADJUSTMENT_PREFIX)]
    assert [(line.work_date, line.seconds) for line in original] == [(date(2026, 10, 14), 30 * 60)]
    assert sorted((line.work_date, line.seconds) for line in adjustments) == [
        (date(2026, 11, 1), 10 * 60),
        (date(2026, 11, 1), 45 * 60),
    ]
    assert all("Adjustment of 2026-10" in (line.description or "") for line in adjustments)
    assert result.credits == []
    assert run(world).sent == 0  # the adjustment is stable
    # The adjustment lives in an open month, so it simply follows later changes...
    source.put("e2", 15, date(2026, 10, 15))
    result = run(world)
    assert sorted(line.seconds for line in sink.lines() if line.line_key.startswith(ADJUSTMENT_PREFIX)) == [600, 900]
    # ...but time below what the closed month holds cannot be negative time: it is a credit to book.
    source.put("e1", 20, date(2026, 10, 14))
    result = run(world)
    assert sorted(line.seconds for line in sink.lines() if line.line_key.startswith(ADJUSTMENT_PREFIX)) == [900]
    assert [(c.period, c.person, c.code, c.seconds) for c in result.credits] == [
        ("2026-10", "Zoë Müller", "WEB", -10 * 60)
    ]
    assert [line.seconds for line in sink.lines() if line.line_key.startswith("day:")] == [30 * 60]


def test_reopen_needs_a_reason_and_then_edits_in_place(world: dict[str, Any]) -> None:
    source, sink, engine = world["source"], world["sink"], world["engine"]
    source.put("e1", 30, date(2026, 10, 14))
    run(world)
    periods.close(engine, "2026-10", by="finance", reason="", now=AS_OF)
    source.put("e1", 40, date(2026, 10, 14))
    run(world)
    assert len(sink.records) == 2
    with pytest.raises(Exception, match="needs a reason"):
        periods.reopen(engine, "2026-10", by="finance", reason=" ", now=AS_OF)
    periods.reopen(engine, "2026-10", by="finance", reason="late invoice fix", now=AS_OF)
    run(world)
    assert [(line.work_date, line.seconds) for line in sink.lines()] == [(date(2026, 10, 14), 40 * 60)]
    with engine.connect() as conn:
        events = periods.history(conn, "2026-10")
    assert [(e.action, e.reason) for e in events] == [("close", ""), ("reopen", "late invoice fix")]


def test_period_granularity_sums_a_month_per_person_and_code(world: dict[str, Any]) -> None:
    source, sink = world["source"], world["sink"]
    for day in (3, 4, 5):
        source.put(f"a{day}", 20, date(2026, 11, day))
    source.put("b1", 15, date(2026, 11, 6), person="u2")
    run(world, granularity="period")
    lines = sorted(sink.lines(), key=lambda line: line.person)
    assert [(line.person, line.payee, line.seconds, line.work_date) for line in lines] == [
        ("Liam O'Connor", "Liam O'Connor", 900, date(2026, 11, 30)),
        ("Zoë Müller", "Zoë Müller Consulting", 3600, date(2026, 11, 30)),
    ]


def test_a_second_deliverer_steps_aside_while_one_holds_the_sink(world: dict[str, Any]) -> None:
    from sync.delivery.outbox import sink_lock

    world["source"].put("e1", 30, date(2026, 11, 3))
    with sink_lock(world["engine"], "quickbooks") as mine:
        assert mine
        result = run(world)
    assert result.skipped is not None and not world["sink"].records
    assert run(world).ok == 1  # the lock went with its holder


def test_max_ops_per_run_leaves_the_rest_for_the_next_run(world: dict[str, Any]) -> None:
    for day in range(1, 6):
        world["source"].put(f"e{day}", 10, date(2026, 11, day))
    first = run(world, granularity="entry", max_ops_per_run=2)
    assert (first.ok, first.capped) == (2, 3)
    run(world, granularity="entry", max_ops_per_run=2)
    run(world, granularity="entry", max_ops_per_run=2)
    assert len(world["sink"].records) == 5


def test_replaced_entry_keeps_its_line_identity_within_the_month(world: dict[str, Any]) -> None:
    world["source"].put("e1", 30, date(2026, 11, 3))
    run(world, granularity="entry")
    moved = dataclasses.replace(world["source"].entries["e1"], work_date=date(2026, 11, 9), content_hash="")
    world["source"].entries["e1"] = moved
    result = run(world, granularity="entry")
    assert (result.planned, result.ok) == (1, 1)
    assert [line.work_date for line in world["sink"].lines()] == [date(2026, 11, 9)]


def reconcile(world: dict[str, Any], month: str = "2026-11") -> Any:
    settings = Settings(
        database_url="sqlite://",
        mappings_file=world["tmp"] / "rules.yaml",
        quickbooks=QuickBooksSettings(realm_id="1", granularity="entry"),
        delivery=DeliverySettings(asana_gate="none"),
    )
    context = RunContext.create(settings, world["engine"], as_of=AS_OF)
    mapping = adopt_mapping(context, load_mapping(settings, world["engine"]))
    return reconcile_month(
        context, month, mapping, sources={"asana": world["source"]}, sinks={"quickbooks": world["sink"]}
    )


def test_reconcile_agrees_and_then_names_every_difference_line_by_line(world: dict[str, Any]) -> None:
    source, sink = world["source"], world["sink"]
    source.put("e1", 30, date(2026, 11, 3))
    source.put("e2", 45, date(2026, 11, 4), person="u2")
    source.put("x1", 20, date(2026, 11, 4), project="Nowhere")
    run(world, granularity="entry")
    result = reconcile(world)
    assert result.ok, result.differences
    rows = {(row.code, row.person): row for row in result.rows.values()}
    zoe = rows[("WEB", "Zoë Müller")]
    assert (zoe.source_seconds, zoe.ledger_seconds, zoe.sink_expected, zoe.sink_holds) == (
        1800,
        1800,
        {"quickbooks": 30},
        {"quickbooks": 30},
    )
    assert rows[("(unmapped)", "Zoë Müller")].ledger_seconds == 1200
    # Someone deletes a record in accounting, a stale copy appears, and an entry is edited unsynced.
    remote, record = next((k, v) for k, v in sink.records.items() if v["line"].person == "Liam O'Connor")
    del sink.records[remote]
    sink.records["999"] = {"key": "0" * 8 + "-0000-0000-0000-" + "0" * 12, "line": record["line"], "token": "0"}
    source.put("e1", 35, date(2026, 11, 3))
    result = reconcile(world)
    notes = sorted(d.note for d in result.differences)
    assert len(notes) == 3, notes
    assert notes[0].startswith("edited in the PM tool")
    assert "in the sink but not a line it should hold" in notes[1]
    assert notes[2] == "missing in the sink"
    assert not result.ok
