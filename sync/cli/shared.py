"""What every CLI command module shares: the consoles, admin-readable error printing, and settings loading."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape

from connectors.errors import ConfigError, HourbridgeError
from sync.logging import configure_logging
from sync.reporting.model import Period
from sync.settings import DEFAULT_SECRETS_DIR, SECRETS_DIR_ENV, Settings, load_settings

# Wide enough that nothing an admin reads is ever cut or wrapped, small enough to lay out quickly.
UNBOUNDED_WIDTH = 100_000


class OutputConsole(Console):
    """Rich's console, at the terminal's width on a terminal and unbounded anywhere else.

    Off a terminal (cron mail, journald, CI logs, a pipe) Rich would assume 80 columns and cut or
    wrap tables and long lines; there nothing reads the output at a width, so lines stay whole.
    Whether the stream is a terminal is decided at each print: CliRunner and pipes swap it.
    """

    @property
    def size(self) -> ConsoleDimensions:
        if self.is_terminal:
            return super().size
        return ConsoleDimensions(UNBOUNDED_WIDTH, super().size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


out = OutputConsole()
err = OutputConsole(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def admin_errors(fn: F) -> F:
    """Print hourbridge errors as one readable line (exit 2 for settings an admin must fix, 1 otherwise)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            # escape: messages are plain text, and "hourbridge[postgres]" is not Rich markup.
            err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except HourbridgeError as exc:
            err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def command_settings(**overrides: Any) -> Settings:
    """The settings of a command, with logging configured from them."""
    settings = load_settings(**overrides)
    configure_logging(settings.log_format, settings.log_level)
    return settings


def secrets_dir() -> Path:
    """The folder secret files are read from (whether or not it exists)."""
    return Path(os.environ.get(SECRETS_DIR_ENV, str(DEFAULT_SECRETS_DIR)))


def warn_unknown_variables() -> None:
    """One warning line per HOURBRIDGE_ variable or secret file no setting reads (a typo is otherwise silent)."""
    from sync.settings_env import unknown_variables

    for unknown in unknown_variables(os.environ, secrets_dir()):
        err.print(f"[yellow]warning:[/] {escape(unknown.message())}", highlight=False, soft_wrap=True)


def installed_version() -> str:
    """hourbridge's version as its package metadata states it (what pip installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hourbridge")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed as a package)"


def say(message: str) -> None:
    """One line of plain output (no markup guessing, long lines kept whole)."""
    out.print(message, highlight=False, soft_wrap=True)


def print_files(files: Iterable[Path], *, verbose: bool, what: str = "files") -> None:
    """The files a command wrote: every path with ``verbose``, otherwise a count per folder."""
    paths = list(files)
    if verbose:
        for path in paths:
            say(f"  {path}")
        return
    folders: dict[Path, int] = {}
    for path in paths:
        folders[path.parent] = folders.get(path.parent, 0) + 1
    for folder, count in sorted(folders.items()):
        say(f"  {count} {what if count != 1 else what.removesuffix('s')} in {folder}/")
    if paths:
        say("  (--verbose lists every file)")


def parse_period(period: str | None, from_: str | None, to: str | None) -> Period:
    if period and (from_ or to):
        raise ConfigError("use either --period or --from/--to, not both")
    if from_ or to:
        if not (from_ and to):
            raise ConfigError("--from and --to go together")
        try:
            return Period.between(date.fromisoformat(from_), date.fromisoformat(to))
        except ValueError as exc:
            raise ConfigError(f"--from/--to: {exc}") from None
    if period is None:
        today = datetime.now(UTC).date()
        period = f"{today.year:04d}-{today.month:02d}"
    try:
        return Period.month(period)
    except ValueError as exc:
        raise ConfigError(f"--period: {exc}") from None
