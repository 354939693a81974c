"""Engine creation and Alembic upgrades for the state store (SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from connectors.errors import ConfigError

MIGRATIONS = Path(__file__).parent / "migrations"
# The PostgreSQL advisory lock migrations take (a fixed 64-bit number: "hourbrdg" in ASCII).
MIGRATION_LOCK_KEY = int.from_bytes(b"hourbrdg", "big") >> 1


def make_engine(url: str) -> Engine:
    """An engine for the store; SQLite gets WAL, foreign keys and a busy timeout."""
    try:
        parsed = make_url(url)
    except Exception:  # any parse failure is the same admin mistake
        raise ConfigError(f"HOURBRIDGE_DATABASE_URL is not a valid database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
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
    with open(f"{database}.migrate.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_scripts_config()).get_current_head()


def require_current(engine: Engine) -> None:
    """Fail with a clear message when the store has not been migrated."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise ConfigError(f"the database schema is at {current or 'nothing'}, not {head}: run `hourbridge db upgrade`")
