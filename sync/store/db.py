"""Engine creation and Alembic upgrades for the state store (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError

from connectors._files import apply_mode
from connectors._redact import redact
from connectors.errors import ConfigError
from sync.settings import DEFAULT_FILE_PERMISSIONS

MIGRATIONS = Path(__file__).parent / "migrations"
# The PostgreSQL advisory lock migrations take (a fixed 64-bit number: "hourbrdg" in ASCII).
MIGRATION_LOCK_KEY = int.from_bytes(b"hourbrdg", "big") >> 1
SETTING = "HOURBRIDGE_DATABASE_URL"


def database_problem(exc: BaseException) -> str:
    """Why the store cannot be used, in one line an admin can act on (no password in it)."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return redact(reason[0] if reason else type(exc).__name__)


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except Exception:  # any parse failure is the same admin mistake
        raise ConfigError(f"{SETTING} is not a valid database URL: {url!r}") from None
    if parsed.drivername in ("postgres", "postgres+psycopg"):
        # Heroku-style URLs: SQLAlchemy knows the dialect only as "postgresql".
        raise ConfigError(
            f"{SETTING} starts with postgres://, which is not a SQLAlchemy dialect: write "
            "postgresql+psycopg://user:password@host:5432/database"
        )
    return parsed


def sqlite_file(engine_or_url: Engine | str) -> Path | None:
    """The file of a SQLite store (None for PostgreSQL and in-memory SQLite)."""
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _require_sqlite_folder(path: Path) -> None:
    # A mistyped path must not quietly become a new, empty ledger (which would then pull and deliver
    # everything again): the folder has to exist already; only the file is ever created.
    folder = path.resolve().parent
    if not folder.is_dir():
        raise ConfigError(
            f"{SETTING} names the SQLite file {path}, but its folder {folder} does not exist: fix the path, "
            f"or create the folder first (mkdir -p {folder})"
        )


def make_engine(url: str, *, file_mode: int = DEFAULT_FILE_PERMISSIONS) -> Engine:
    """An engine for the store; SQLite gets WAL, foreign keys and a busy timeout.

    Nothing is created here: a SQLite file appears on the first write, and only in a folder that
    exists; URL mistakes (an unknown dialect, a driver that is not installed) are a ConfigError.
    A SQLite file this engine creates gets exactly ``file_mode`` (HOURBRIDGE_FILE_MODE) before its
    ``-wal`` and ``-shm`` files are opened: SQLite creates those with the database's own mode.
    """
    parsed = _parse(url)
    try:
        return _create(url, parsed, file_mode)
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(
            f"{SETTING} asks for the database driver {parsed.drivername!r}, which is not installed or unknown "
            f"({database_problem(exc)}): use sqlite:///path/to/hourbridge.db or postgresql+psycopg://… "
            "(pip install 'hourbridge[postgres]')"
        ) from None


def _create(url: str, parsed: URL, file_mode: int) -> Engine:
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        if path is not None:
            _require_sqlite_folder(path)
        engine = create_engine(url, connect_args={"timeout": 30})

        created: list[bool] = [False]

        @event.listens_for(engine, "do_connect")
        def _note_new_file(*_: Any) -> None:
            created[0] = path is not None and not path.exists()

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
            if path is not None and created[0]:
                # Opening created the file with 0644 less the umask: give it the chosen mode before
                # WAL mode opens its -wal and -shm files, which SQLite creates with the database's mode.
                with contextlib.suppress(OSError):  # a read-only mount: the mode stays what it is
                    apply_mode(path, file_mode)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True)


def _scripts_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def alembic_config(engine: Engine) -> Config:
    config = _scripts_config()
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the store's schema to ``revision`` (idempotent; concurrent callers take turns).

    Two processes starting on a fresh database at once (a worker and a cron sync, two replicas)
    would both create the tables, and one would fail with "table entries already exists". So
    migrations run under one lock per database: a PostgreSQL advisory lock held by the migrating
    transaction, or an OS file lock beside a SQLite file. The one that waits then finds the schema
    current and has nothing to do.
    """
    config = alembic_config(engine)
    with _migration_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Transaction-scoped: released by the commit (or rollback) that ends the migration.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """SQLite: an exclusive lock on ``<database>.migrate.lock`` (dies with its holder); otherwise nothing."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with engine.connect():  # the ledger file exists, with its mode, before its lock copies that mode
        pass
    with open_lock_file(database, "migrate") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_lock_file(database: str, name: str) -> BinaryIO:
    """``<database>.<name>.lock`` opened for an OS lock, with exactly the ledger file's own mode.

    The lock files sit beside the ledger and carry its mode (HOURBRIDGE_FILE_MODE when hourbridge
    created it), whatever the umask.
    """
    lock = Path(f"{database}.{name}.lock")
    try:
        mode = Path(database).stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = DEFAULT_FILE_PERMISSIONS
    handle = open(os.open(lock, os.O_RDWR | os.O_CREAT | os.O_APPEND, mode), "a+b")  # noqa: SIM115  (the caller closes it)
    with contextlib.suppress(OSError):  # a lock file of another user, a read-only mount: its mode stays
        apply_mode(lock, mode)  # os.open's mode is narrowed by the umask; the setting is exact
    return handle


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_scripts_config()).get_current_head()


def store_revision(engine: Engine, *, create: bool = False) -> str | None:
    """The store's schema revision, checking on the way that it can be used at all.

    A SQLite file that does not exist yet is created only with ``create`` (``db upgrade``, ``sync``);
    otherwise the admin is told, since a mistyped path would leave an empty ledger behind. Connection
    failures (refused, unknown database, bad password) and a schema newer than this version are a
    ConfigError naming HOURBRIDGE_DATABASE_URL.
    """
    path = sqlite_file(engine)
    if path is not None and not create and not path.exists():
        raise ConfigError(
            f"there is no ledger at {path} ({SETTING}): check the path, or run `hourbridge db upgrade` "
            "(or a first `hourbridge sync`) to create a new one there"
        )
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        raise ConfigError(f"the database of {SETTING} cannot be used: {database_problem(exc)}") from None
    known = {script.revision for script in ScriptDirectory.from_config(_scripts_config()).walk_revisions()}
    if current is not None and current not in known:
        raise ConfigError(
            f"the database schema is at {current}, which this version of hourbridge does not know (newest: "
            f"{head_revision()}): upgrade hourbridge, or check that {SETTING} names the right database"
        )
    return current


def require_current(engine: Engine) -> None:
    """Fail with a clear message when the store is missing, unreachable or not migrated."""
    current, head = store_revision(engine), head_revision()
    if current != head:
        raise ConfigError(f"the database schema is at {current or 'nothing'}, not {head}: run `hourbridge db upgrade`")
