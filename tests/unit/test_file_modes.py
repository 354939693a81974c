"""HOURBRIDGE_FILE_MODE: the ledger, its lock and journal files, reports and statements get exactly that mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from connectors._files import write_files
from connectors.errors import ConfigError
from sync.settings import load_settings
from sync.store.db import make_engine, upgrade


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0o000)  # the widest umask: nothing narrows what a file is created with
    yield
    os.umask(previous)


@pytest.fixture
def tight_umask() -> Iterator[None]:
    previous = os.umask(0o077)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("value", "bits"), [("0640", 0o640), ("640", 0o640), ("0o600", 0o600), ("0660", 0o660)])
def test_file_mode_is_read_as_octal(monkeypatch: pytest.MonkeyPatch, value: str, bits: int) -> None:
    monkeypatch.setenv("HOURBRIDGE_FILE_MODE", value)
    settings = load_settings()
    assert settings.file_permissions == bits
    assert settings.file_mode == f"0{bits:03o}"


def test_file_mode_defaults_to_owner_write_group_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOURBRIDGE_FILE_MODE", raising=False)
    assert load_settings().file_permissions == 0o640


@pytest.mark.parametrize(
    ("value", "why"), [("0400", "owner"), ("0740", "execute"), ("0689", "octal"), ("01640", "octal"), ("", "octal")]
)
def test_file_mode_refuses_what_cannot_work(monkeypatch: pytest.MonkeyPatch, value: str, why: str) -> None:
    monkeypatch.setenv("HOURBRIDGE_FILE_MODE", value)
    with pytest.raises(ConfigError, match="HOURBRIDGE_FILE_MODE") as caught:
        load_settings()
    assert why in caught.value.message


@pytest.mark.parametrize("bits", [0o600, 0o640, 0o660])
def test_sqlite_ledger_and_its_companions_get_exactly_the_mode(tmp_path: Path, open_umask: None, bits: int) -> None:
    database = tmp_path / "ledger.db"
    engine = make_engine(f"sqlite:///{database}", file_mode=bits)
    try:
        upgrade(engine)
        with engine.begin() as conn:  # WAL mode: a write keeps -wal and -shm while the pool holds the connection
            conn.execute(text("CREATE TABLE probe (x INTEGER)"))
            conn.execute(text("INSERT INTO probe VALUES (1)"))
        companions = [Path(f"{database}{suffix}") for suffix in ("-wal", "-shm", ".migrate.lock")]
        assert all(path.exists() for path in companions)
        assert {path.name: mode(path) for path in [database, *companions]} == {
            path.name: bits for path in [database, *companions]
        }
    finally:
        engine.dispose()


def test_an_existing_ledger_keeps_its_mode(tmp_path: Path, open_umask: None) -> None:
    # Only a file hourbridge creates gets the setting: an admin's own chmod of an existing ledger stands.
    database = tmp_path / "ledger.db"
    upgrade(make_engine(f"sqlite:///{database}", file_mode=0o640))
    database.chmod(0o600)
    engine = make_engine(f"sqlite:///{database}", file_mode=0o640)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    assert mode(database) == 0o600


def test_written_files_get_exactly_the_mode_under_any_umask(tmp_path: Path, tight_umask: None) -> None:
    changed = write_files(tmp_path, [("a.csv", b"1"), ("b.csv", b"2")], mode=0o640)
    assert len(changed) == 2
    assert {mode(tmp_path / name) for name in ("a.csv", "b.csv")} == {0o640}  # the umask 077 would give 0600
    # Unchanged bytes are left in place, but take a changed setting.
    inode = (tmp_path / "a.csv").stat().st_ino
    assert write_files(tmp_path, [("a.csv", b"1")], mode=0o600) == ()
    assert (tmp_path / "a.csv").stat().st_ino == inode
    assert mode(tmp_path / "a.csv") == 0o600
    # Without a mode, new files are the owner's only.
    write_files(tmp_path, [("c.csv", b"3")])
    assert mode(tmp_path / "c.csv") == 0o600


def test_the_delivery_lock_beside_a_ledger_gets_its_mode(tmp_path: Path, open_umask: None) -> None:
    from sync.delivery.outbox import sink_lock

    database = tmp_path / "ledger.db"
    engine = make_engine(f"sqlite:///{database}", file_mode=0o600)
    try:
        upgrade(engine)
        with sink_lock(engine, "quickbooks") as got:
            assert got
        assert mode(Path(f"{database}.deliver-quickbooks.lock")) == 0o600  # umask 000 would give 0666
    finally:
        engine.dispose()
