"""Put files into a folder atomically, leaving files that already hold the same bytes alone."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["apply_mode", "csv_text", "write_files"]

# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets.
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str) -> str:
    """``value`` for a CSV cell, a formula neutralised by a leading apostrophe.

    Names and descriptions come from PM tools and trackers, which anyone can edit: a task called
    ``=HYPERLINK(...)`` must open as text in the spreadsheet finance uses. Idempotent: a
    neutralised value starts with ``'`` and is left as it is.
    """
    return "'" + value if value.startswith(_FORMULA_TRIGGERS) else value


def _stage(folder: Path, name: str, data: bytes, mode: int | None) -> Path:
    """Write ``data`` to a fresh temporary file beside its destination and flush it to disk."""
    handle, temp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    temp = Path(temp_name)
    try:
        if mode is not None:
            # Exactly ``mode``, whatever the umask: the file appears under its name already with it.
            os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def _holds(path: Path, data: bytes) -> bool:
    """Whether ``path`` is a regular file whose content is exactly ``data``."""
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _sync_folder(folder: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def apply_mode(path: Path, mode: int) -> None:
    """Give an existing file exactly ``mode`` (permission bits), when it is ours and differs."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_mode & 0o7777 != mode and info.st_uid == os.geteuid():
        os.chmod(path, mode)


def write_files(folder: Path, outputs: Sequence[tuple[str, bytes]], *, mode: int | None = None) -> tuple[Path, ...]:
    """Put every ``(name, bytes)`` into ``folder`` atomically; return the paths that were (re)written.

    Everything is staged as temporary files first, then moved into place with ``os.replace``; on
    failure the temporaries are removed and existing files stay as they were. A file that already
    holds exactly its new bytes is left alone (same inode, same mtime). With ``mode``, every file
    ends up with exactly those permission bits (an unchanged one too); without, new files are
    readable by their owner only.
    """
    folder.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    changed: list[Path] = []
    try:
        for name, data in outputs:
            if not _holds(folder / name, data):
                staged.append((_stage(folder, name, data, mode), folder / name))
            elif mode is not None:
                apply_mode(folder / name, mode)
        while staged:
            temp, target = staged[0]
            os.replace(temp, target)
            staged.pop(0)
            changed.append(target)
    finally:
        for temp, _ in staged:
            with contextlib.suppress(OSError):
                temp.unlink()
    _sync_folder(folder)
    return tuple(changed)
