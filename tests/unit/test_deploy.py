"""Deployment files say what ops teams rely on: secrets by file, migrations first, a real schedule."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit as section -> key -> every value (keys such as Environment repeat)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for line in (DEPLOY / "systemd" / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        else:
            key, _, value = line.partition("=")
            sections[section][key].append(value)
    return sections


def test_service_migrates_then_syncs_as_an_unprivileged_user() -> None:
    service = unit("hourbridge.service")["Service"]
    assert service["User"] == ["hourbridge"]
    assert service["ExecStartPre"][0].endswith("hourbridge db upgrade")
    assert service["ExecStart"][0].endswith("hourbridge sync")
    assert any(v.startswith("HOURBRIDGE_SECRETS_DIR=") for v in service["Environment"])
    assert not any("TOKEN" in v for v in service["Environment"])  # secrets come from files


def test_timer_schedules_the_service() -> None:
    timer = unit("hourbridge.timer")["Timer"]
    assert timer["OnCalendar"] == ["hourly"]
    assert timer["Persistent"] == ["true"]
