"""The migrations build exactly the tables in sync/store/tables.py, upgrade 0001 data, and step back down."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData, insert, inspect, select, text

from sync.store.db import alembic_config, current_revision, head_revision, upgrade
from sync.store.tables import console_sessions, entries, mapping_revisions, metadata

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def drift(engine: Engine, expected: MetaData = metadata) -> list[Any]:
    """What `alembic check` would report: differences between tables.py and the migrated database."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "render_as_batch": True})
        return list(compare_metadata(context, expected))


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def test_head_is_the_console_idle_migration(engine: Engine) -> None:
    assert head_revision() == "0008"
    assert current_revision(engine) == "0008"


def test_migrated_database_matches_the_tables_exactly(engine: Engine) -> None:
    assert drift(engine) == []
    # The comparison sees the tables at all: against empty metadata every table is "removed".
    assert {diff[1].name for diff in drift(engine, MetaData()) if diff[0] == "remove_table"} >= {
        "entries",
        "mapping_revisions",
    }
    columns = {column["name"] for column in inspect(engine).get_columns("entries")}
    assert {"mapping_hash", "mapping_revision", "rule_id"} <= columns
    assert "mapping_revisions" in inspect(engine).get_table_names()


def test_upgrade_from_0001_keeps_entries_and_leaves_them_unrevisioned(engine: Engine) -> None:
    downgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    assert "mapping_revisions" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        # Written with the 0001 columns only: the Table object already knows mapping_revision.
        conn.execute(
            insert(entries).values(
                source="asana",
                account="ws1",
                external_id="e1",
                version=1,
                content_hash="h",
                work_date=date(2026, 11, 5),
                duration_seconds=600,
                person_id="u1",
                person_name="Zoë",
                payload={},
                first_seen_at=NOW,
                updated_at=NOW,
                mapping_hash="old-document",
                code="WEB",
            )
        )
    upgrade(engine)
    assert current_revision(engine) == "0008"
    with engine.connect() as conn:
        row = conn.execute(select(entries.c.external_id, entries.c.code, entries.c.mapping_revision)).one()
        assert tuple(row) == ("e1", "WEB", None)
        assert conn.execute(select(mapping_revisions)).all() == []
    assert drift(engine) == []


def test_downgrade_to_0001_then_upgrade_again_is_clean(engine: Engine) -> None:
    downgrade(engine, "0001")
    columns = {column["name"] for column in inspect(engine).get_columns("entries")}
    assert "mapping_revision" not in columns
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert drift(engine) == []


def test_upgrade_from_0007_counts_open_console_sessions_as_seen_when_opened(engine: Engine) -> None:
    downgrade(engine, "0007")
    assert "console_sign_in_attempts" not in inspect(engine).get_table_names()
    with engine.begin() as conn:
        # Written with the 0007 columns only.
        conn.execute(
            text(
                "INSERT INTO console_sessions (id_hash, identity, role, method, csrf_token, created_at, expires_at) "
                "VALUES ('h1', 'Ada (token 1)', 'admin', 'token', 'c', :created, :expires)"
            ),
            {"created": NOW, "expires": NOW + timedelta(hours=8)},
        )
    upgrade(engine)
    with engine.connect() as conn:
        seen = conn.execute(select(console_sessions.c.last_seen_at)).scalar_one()
    assert (seen if seen.tzinfo else seen.replace(tzinfo=UTC)) == NOW
    assert drift(engine) == []
