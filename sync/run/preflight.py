"""Checks a run makes before it writes anything: the database is usable and the output folder writable."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sqlalchemy import Engine

from connectors.errors import ConfigError
from sync.settings import Settings
from sync.store.db import sqlite_file, store_revision

__all__ = ["preflight", "require_writable_folder"]


def require_writable_folder(folder: Path, setting: str) -> None:
    """``folder`` exists and takes files, or can be created; a ConfigError naming ``setting`` otherwise."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{setting}={folder}: {existing} is a file, not a folder; point {setting} at a folder")
    try:
        # A real write, not os.access: root, ACLs and read-only mounts all answer honestly to it.
        with tempfile.TemporaryFile(dir=existing, prefix=".hourbridge-check-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"{setting}={folder}: cannot write in {existing} ({exc.strerror or exc}); give the user running "
            f"hourbridge (uid {os.getuid()}) write access, or point {setting} elsewhere"
        ) from None


def preflight(settings: Settings, engine: Engine, *, write_reports: bool) -> Path | None:
    """Everything `sync` checks before it writes; returns the SQLite file when this run will create it.

    A new SQLite file is only created in a folder that exists (checked when the engine was made) and
    is not opened here: opening it would create it, and a run that then stops on a setting error must
    leave nothing behind. An existing store must be reachable and at a schema this version can migrate.
    """
    path = sqlite_file(engine)
    created = path if path is not None and not path.exists() else None
    if created is None:
        store_revision(engine, create=True)
    if write_reports:
        require_writable_folder(settings.output_dir, "HOURBRIDGE_OUTPUT_DIR")
    return created
