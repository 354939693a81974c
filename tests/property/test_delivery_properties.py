"""Properties of delivery: whatever happens in the PM tool, accounting ends up holding it once, closed months intact."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.delivery import periods
from sync.delivery.lines import ADJUSTMENT_PREFIX
from sync.run.pipeline import run_sync
from sync.settings import DeliverySettings, QuickBooksSettings, Settings
from sync.store.db import make_engine, upgrade
from tests.fakes import ListSource, MemorySink
from tests.unit.test_delivery import DOCUMENT

AS_OF = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAYS = [date(2026, 10, d) for d in (20, 27, 31)] + [date(2026, 11, d) for d in (2, 3, 16)]
IDS = [f"e{i}" for i in range(6)]

put = st.tuples(st.just("put"), st.sampled_from(IDS), st.integers(1, 240), st.sampled_from(DAYS), st.booleans())
step = st.one_of(
    put,
    st.tuples(st.just("delete"), st.sampled_from(IDS)),
    st.tuples(st.just("close"), st.sampled_from(["2026-10", "2026-11"])),
    st.tuples(st.just("reopen"), st.sampled_from(["2026-10", "2026-11"])),
    st.tuples(st.just("run")),
)


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=12), granularity=st.sampled_from(["entry", "day", "period"]))
def test_delivered_plus_adjustments_plus_credits_equal_the_pm_tool(
    tmp_path: Path, steps: list[tuple[Any, ...]], granularity: str
) -> None:
    folder = tmp_path / f"case-{abs(hash((tuple(steps), granularity)))}"
    folder.mkdir()
    (folder / "rules.yaml").write_text(DOCUMENT, encoding="utf-8")
    engine = make_engine(f"sqlite:///{folder / 'state.db'}")
    upgrade(engine)
    source, sink = ListSource(), MemorySink()
    config = Settings(
        database_url="sqlite://",
        mappings_file=folder / "rules.yaml",
        output_dir=folder / "out",
        start_date=date(2026, 10, 1),
        lookback_days=90,
        quickbooks=QuickBooksSettings(realm_id="1", granularity=granularity),  # type: ignore[arg-type]
        delivery=DeliverySettings(asana_gate="none"),
    )

    def run() -> Any:
        result = run_sync(
            config,
            sources={"asana": source},
            sinks={"quickbooks": sink},
            engine=engine,
            as_of=AS_OF,
            write_reports=False,
        )
        return result.deliveries["quickbooks"]

    for action, *args in [*steps, ("run",)]:
        if action == "put":
            ident, minutes, day, mapped = args
            source.put(ident, minutes, day, project="Website" if mapped else "Elsewhere")
        elif action == "delete":
            source.entries.pop(args[0], None)
        elif action == "close":
            periods.close(engine, args[0], by="t", reason="", now=AS_OF)
        elif action == "reopen":
            with engine.connect() as conn:
                is_closed = periods.closed(conn).is_closed(args[0])
            if is_closed:
                periods.reopen(engine, args[0], by="t", reason="fix", now=AS_OF)
        else:
            result = run()
            assert result.failed == 0 and result.unknown == 0
    result = run()
    assert result.planned == 0 and result.sent == 0  # converged: a re-run sends nothing

    with engine.connect() as conn:
        closed = periods.closed(conn)
    wanted: dict[str, int] = defaultdict(int)
    for entry in source.entries.values():
        if any(c.name == "Website" for c in entry.containers):
            wanted[_month(entry.work_date)] += entry.duration_seconds
    held: dict[str, int] = defaultdict(int)
    keys = [line.line_key for line in sink.lines()]  # type: ignore[attr-defined]
    assert len(keys) == len(set(keys))  # one record per line: nothing duplicated
    for line in sink.lines():
        if line.line_key.startswith(ADJUSTMENT_PREFIX):  # type: ignore[attr-defined]
            origin = re.search(r"Adjustment of (\d{4}-\d{2})", line.description or "")  # type: ignore[attr-defined]
            assert origin is not None
            held[origin.group(1)] += line.seconds  # type: ignore[attr-defined]
        else:
            held[_month(line.work_date)] += line.seconds  # type: ignore[attr-defined]
    credits: dict[str, int] = defaultdict(int)
    for credit in result.credits:
        credits[credit.period] += credit.seconds
        assert closed.is_closed(credit.period) and credit.seconds < 0

    for month in set(wanted) | set(held):
        # Open months hold exactly the PM tool's time; closed ones plus their adjustments do too,
        # except for decreases, which are reported as credits to book.
        assert held[month] + credits[month] == wanted[month], (month, dict(held), dict(credits), dict(wanted))
    engine.dispose()
