"""Settings an admin can act on: malformed lists, unknown variables with "did you mean", the values in effect."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connectors.errors import ConfigError
from sync.settings import load_settings
from sync.settings_env import effective_settings, unknown_variables

RIGHT_FORM = 'HOURBRIDGE_ASANA__WORKSPACES=\'["1200000000000001", "1200000000000002"]\''


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("HOURBRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.setenv("HOURBRIDGE_ASANA__TOKEN", "1/abc")


@pytest.mark.parametrize("value", ['["1200', "1200,1300", "a,b", "[1200, 1300]", "1200"])
def test_a_malformed_list_names_the_variable_and_the_right_form(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HOURBRIDGE_ASANA__WORKSPACES", value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "HOURBRIDGE_ASANA__WORKSPACES" in raised.value.message
    assert RIGHT_FORM in raised.value.message


def test_a_malformed_list_in_a_secret_file_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "hourbridge_clickup__team_ids").write_text("[123", encoding="utf-8")
    (secrets / "hourbridge_clickup__token").write_text("pk_1", encoding="utf-8")
    monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(secrets))
    with pytest.raises(ConfigError) as raised:
        load_settings()
    message = raised.value.message
    assert "HOURBRIDGE_CLICKUP__TEAM_IDS" in message and "secret file" in message
    assert 'HOURBRIDGE_CLICKUP__TEAM_IDS=\'["1200000000000001"' in message


def test_a_list_of_choices_shows_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURBRIDGE_REPORT_FORMATS", "csv,xlsx")
    with pytest.raises(ConfigError, match=r"HOURBRIDGE_REPORT_FORMATS='\[\"csv\", \"xlsx\"\]'"):
        load_settings()


def test_unknown_variables_are_found_with_the_setting_they_meant(tmp_path: Path) -> None:
    environ = {
        "HOURBRIDGE_ASANA_TOKEN": "x",
        "HOURBRIDGE_LOOKBAK_DAYS": "10",
        "hourbridge_log_levl": "DEBUG",
        "HOURBRIDGE_COMPLETELY_DIFFERENT": "1",
        # Known ones, in any case, and the variables read outside the settings model.
        "HOURBRIDGE_ASANA__TOKEN": "x",
        "hourbridge_lookback_days": "10",
        "HOURBRIDGE_SECRETS_DIR": "/run/secrets",
        "HOURBRIDGE_TEST_POSTGRES_URL": "postgresql+psycopg://localhost/test",
        "HOURBRIDGE_DELIVERY__ASANA_GATE": "none",
        "HOURBRIDGE_ASANA": '{"token": "x"}',
        "OTHER_LOOKBACK_DAYS": "3",
    }
    found = {u.name: u.suggestion for u in unknown_variables(environ, None)}
    assert found == {
        "HOURBRIDGE_ASANA_TOKEN": "HOURBRIDGE_ASANA__TOKEN",
        "HOURBRIDGE_LOOKBAK_DAYS": "HOURBRIDGE_LOOKBACK_DAYS",
        "HOURBRIDGE_LOG_LEVL": "HOURBRIDGE_LOG_LEVEL",
        "HOURBRIDGE_COMPLETELY_DIFFERENT": None,
    }
    message = next(u for u in unknown_variables(environ, None) if u.name == "HOURBRIDGE_ASANA_TOKEN").message()
    assert "did you mean HOURBRIDGE_ASANA__TOKEN?" in message and "ignored" in message


def test_unknown_secret_files_are_found_too(tmp_path: Path) -> None:
    (tmp_path / "hourbridge_xero__client_secrett").write_text("s", encoding="utf-8")
    (tmp_path / "hourbridge_xero__client_secret").write_text("s", encoding="utf-8")
    (tmp_path / "unrelated").write_text("s", encoding="utf-8")
    [unknown] = unknown_variables({}, tmp_path)
    assert unknown.origin == "secret file" and unknown.suggestion == "HOURBRIDGE_XERO__CLIENT_SECRET"
    assert "hourbridge_xero__client_secrett" in unknown.message()


def test_effective_settings_mask_secrets_and_say_where_values_come_from(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "hourbridge_files__folder").write_text(str(tmp_path / "acct"), encoding="utf-8")
    monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("HOURBRIDGE_DATABASE_URL", "postgresql+psycopg://hb:s3cret-pw@db:5432/hourbridge")
    monkeypatch.setenv("HOURBRIDGE_LOOKBACK_DAYS", "20")
    values, on_off = effective_settings(load_settings(), os.environ, secrets)
    shown = {v.env: (v.value, v.origin) for v in values}
    assert shown["HOURBRIDGE_ASANA__TOKEN"] == ("***", "environment")
    assert shown["HOURBRIDGE_DATABASE_URL"] == ("postgresql+psycopg://hb:***@db:5432/hourbridge", "environment")
    assert shown["HOURBRIDGE_LOOKBACK_DAYS"] == ("20", "environment")
    assert shown["HOURBRIDGE_SCHEDULE"] == ("*/30 * * * *", "default")
    assert shown["HOURBRIDGE_FILES__FOLDER"] == (str(tmp_path / "acct"), "secret file")
    # A section that is off has no values in effect.
    assert not any(env.startswith("HOURBRIDGE_QUICKBOOKS__") for env in shown)
    assert on_off["sources on"] == ["asana"] and "clickup" in on_off["sources off"]
    assert on_off["sinks on"] == ["files"] and "quickbooks" in on_off["sinks off"]
    assert not any("s3cret-pw" in v.value or "1/abc" in v.value for v in values)
