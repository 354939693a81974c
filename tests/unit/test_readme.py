"""The README opens with the two set-up commands and documents every setting with its default."""

from __future__ import annotations

from pathlib import Path

from sync.settings import describe_settings, settings_table

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_readme_opens_with_the_two_commands() -> None:
    opening = README[: README.index("## ")]
    assert "make demo" in opening
    assert "make test" in opening


def test_every_setting_is_documented_with_its_default() -> None:
    for env, default, _ in describe_settings():
        row = next((line for line in README.splitlines() if line.startswith(f"| `{env}` |")), None)
        assert row is not None, f"{env} missing from the README's configuration table"
        expected = f"`{default}`" if default else "—"
        assert f"| {expected} |" in row, f"{env}: README default differs from the code ({default!r})"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


def test_settings_table_is_generated_from_the_registry() -> None:
    assert settings_table() in README, (
        "the README settings table is stale; replace its rows with sync.settings.settings_table()"
    )


def test_required_settings_say_so_and_never_show_a_sentinel() -> None:
    rows = {env: (default, description) for env, default, description in describe_settings()}
    default, description = rows["HOURBRIDGE_FILES__FOLDER"]
    assert default == "" and description.startswith("Required")
    assert not any("Undefined" in d for d, _ in rows.values())
