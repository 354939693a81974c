"""CLI output helpers: consoles unbounded off a terminal, progress bars with totals, accent-blind names."""

from __future__ import annotations

import ast
import io
from pathlib import Path

from rich.console import Console

from sync.cli.progress import progress_bars
from sync.cli.shared import UNBOUNDED_WIDTH, OutputConsole, err, out
from sync.reporting.statements import name_key

ROOT = Path(__file__).resolve().parents[2]


def test_every_console_of_the_cli_and_ops_is_an_output_console() -> None:
    # A plain rich Console anywhere in sync/ would cut cron, journald and CI output at 80 columns.
    made = []
    for path in sorted((ROOT / "sync").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in {
                "Console",
                "OutputConsole",
            }:
                made.append((str(path.relative_to(ROOT)), getattr(node.func, "id", "")))
    assert made == [("sync/cli/shared.py", "OutputConsole"), ("sync/cli/shared.py", "OutputConsole")]
    assert isinstance(out, OutputConsole) and isinstance(err, OutputConsole)


def test_off_a_terminal_the_width_is_unbounded_and_nothing_is_cut() -> None:
    stream = io.StringIO()
    console = OutputConsole(file=stream)
    assert not console.is_terminal
    assert console.width == UNBOUNDED_WIDTH
    console.print("word " * 60, highlight=False)
    assert stream.getvalue() == "word " * 60 + "\n"
    # On a terminal the terminal's own width still applies.
    tty = OutputConsole(file=io.StringIO(), force_terminal=True, width=100)
    assert tty.width == 100


def test_progress_bars_show_totals_and_finish_every_bar() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=120)
    with progress_bars(console, unit="rows", totals={"entries": 5}) as bars:
        assert bars is not None
        bars("entries", 2)
        bars("entries", 3)
        bars("receipts", 4)  # a new label: the first bar is done
        progress = bars._progress
        first, second = progress.tasks
        assert first.finished and (first.completed, first.total) == (5, 5)
        assert not second.finished and second.total is None
    assert second.finished and (second.completed, second.total) == (4, 4)
    text = stream.getvalue()
    assert "5 of 5 rows" in text and "4 of 4 rows" in text


def test_no_progress_bar_off_a_terminal() -> None:
    stream = io.StringIO()
    with progress_bars(Console(file=stream)) as bars:
        assert bars is None
    assert stream.getvalue() == ""


def test_name_key_drops_accents_case_and_extra_spaces() -> None:
    assert name_key("  ZOË   Müller ") == name_key("zoe muller") == "zoe muller"
    assert name_key("José Álvarez") == "jose alvarez"
    assert name_key("Straße") == "strasse"
    assert name_key("Åsa") == "asa"
    assert name_key("Zoe Mueller") != name_key("Zoë Müller")


def test_an_exact_name_wins_over_an_accent_blind_one() -> None:
    from types import SimpleNamespace
    from typing import Any, cast

    from sync.reporting.statements import find_statements

    zoe_plain, zoe_accents = SimpleNamespace(contractor="Zoe Muller"), SimpleNamespace(contractor="Zoë Müller")
    statements = cast(Any, [zoe_plain, zoe_accents])
    assert find_statements(statements, "zoë müller") == [zoe_accents]
    assert find_statements(statements, "ZOE MULLER") == [zoe_plain]
    assert find_statements([zoe_accents], "zoe muller") == [zoe_accents]  # type: ignore[list-item]
    assert find_statements(statements, "Zoey") == []
