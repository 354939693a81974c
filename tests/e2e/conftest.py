"""Shared end-to-end fixtures: the Asana sandbox over a seeded data set, and a clean HOURBRIDGE_ environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.sandbox.asana import AsanaSandbox
from connectors.sandbox.dataset import Dataset, generate_dataset
from sync.cli.app import app


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate_dataset(11, anchor=date(2026, 11, 20), days=45)


@pytest.fixture
def sandbox(dataset: Dataset) -> Iterator[AsanaSandbox]:
    with AsanaSandbox(dataset) as running:
        yield running


@pytest.fixture
def sandbox_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: AsanaSandbox, dataset: Dataset) -> Path:
    """Only our variables: a fresh SQLite store and output folder in ``tmp_path``, Asana at the sandbox."""
    for key in list(os.environ):
        if key.startswith("HOURBRIDGE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOURBRIDGE_SECRETS_DIR", str(tmp_path / "no-secrets"))
    monkeypatch.setenv("HOURBRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("HOURBRIDGE_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("HOURBRIDGE_START_DATE", dataset.start.isoformat())
    monkeypatch.setenv("HOURBRIDGE_ASANA__TOKEN", sandbox.token)
    monkeypatch.setenv("HOURBRIDGE_ASANA__BASE_URL", sandbox.base_url)
    monkeypatch.setenv("HOURBRIDGE_LOG_FORMAT", "json")
    return tmp_path


def run_cli(*args: str) -> tuple[int, str]:
    """The real `hourbridge` app in-process: (exit code, everything it printed)."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output
