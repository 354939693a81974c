"""Settings: HOURBRIDGE_ variables, nested sources, secret files, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.asana import AsanaConfig
from connectors.errors import ConfigError
from sync.settings import Settings, describe_settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("HOURBRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(tmp_path / "no-secrets"))


def test_defaults_enable_no_source() -> None:
    settings = load_settings()
    assert settings.enabled_sources() == []
    assert settings.lookback_days == 35
    assert settings.database_url.startswith("sqlite:///")


def test_nested_variables_enable_asana(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURBRIDGE_ASANA__TOKEN", "1/abc")
    monkeypatch.setenv("HOURBRIDGE_ASANA__WORKSPACES", '["111", "222"]')
    monkeypatch.setenv("HOURBRIDGE_ASANA__PLAN", "free")
    settings = load_settings()
    asana = settings.source_config("asana")
    assert isinstance(asana, AsanaConfig)
    assert asana.token is not None and asana.token.get_secret_value() == "1/abc"
    assert asana.workspaces == ["111", "222"]
    assert asana.effective_rate_limit == 150
    assert "1/abc" not in repr(settings)


def test_token_from_a_secret_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "hourbridge_asana__token").write_text("from-file-token")
    monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(secrets))
    asana = load_settings().source_config("asana")
    assert isinstance(asana, AsanaConfig) and asana.token is not None
    assert asana.token.get_secret_value() == "from-file-token"


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOURBRIDGE_LOOKBACK_DAYS", "many")
    with pytest.raises(ConfigError, match="HOURBRIDGE_LOOKBACK_DAYS"):
        load_settings()
    monkeypatch.delenv("HOURBRIDGE_LOOKBACK_DAYS")
    monkeypatch.setenv("HOURBRIDGE_ASANA__PAGE_SIZE", "500")
    with pytest.raises(ConfigError, match="HOURBRIDGE_ASANA__PAGE_SIZE"):
        load_settings()


def test_reference_lists_every_setting() -> None:
    names = {row[0] for row in describe_settings()}
    for field in Settings.model_fields:
        if field not in ("asana", "clickup", "monday", "quickbooks", "xero", "delivery", "invoices", "console"):
            assert f"HOURBRIDGE_{field.upper()}" in names
    assert {"HOURBRIDGE_ASANA__TOKEN", "HOURBRIDGE_CLICKUP__TOKEN", "HOURBRIDGE_MONDAY__TOKEN"} <= names
    assert {"HOURBRIDGE_QUICKBOOKS__REALM_ID", "HOURBRIDGE_XERO__MODE", "HOURBRIDGE_DELIVERY__ASANA_GATE"} <= names
    assert {"HOURBRIDGE_INVOICES__CODE_MINUTES", "HOURBRIDGE_INVOICES__DUE_DAYS"} <= names
    assert {"HOURBRIDGE_CONSOLE__SESSION_MINUTES", "HOURBRIDGE_CONSOLE__OIDC_CLIENT_SECRET"} <= names
    assert all(description for _, _, description in describe_settings())
