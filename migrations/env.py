"""Alembic environment: one psycopg connection, the version table inside the pgsearch schema,
and an advisory lock so that concurrent upgrades run one after the other.

The SQL objects of sql/ (views, functions, triggers) are no migrations: an upgrade to head applies
them after the migrations, a downgrade drops them before, in the same transaction and under the
same lock (pgsearch/migrate.py), so a concurrent command never sees tables without their objects."""

from __future__ import annotations

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool, text

from pgsearch.migrate import apply_objects, drop_objects

SCHEMA = "pgsearch"
# Any constant works; it only has to be the same for every pgsearch process.
MIGRATION_LOCK = 0x70677365617263


def run_migrations_online() -> None:
    dsn = context.config.attributes["dsn"]
    objects = context.config.attributes.get("objects")
    engine = create_engine(
        "postgresql+psycopg://", creator=lambda: psycopg.connect(dsn), poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            connection.execute(text("CREATE SCHEMA IF NOT EXISTS pgsearch"))
            connection.commit()
            context.configure(
                connection=connection,
                version_table_schema=SCHEMA,
                transaction_per_migration=False,
            )
            with context.begin_transaction():
                driver = connection.connection.driver_connection
                assert isinstance(driver, psycopg.Connection)
                migrations = context.get_context()
                before = migrations.get_current_revision()
                if objects == "drop":
                    drop_objects(driver)
                context.run_migrations()
                if objects == "apply":
                    # A migration that ran may have dropped objects that read what it changed.
                    apply_objects(driver, force=migrations.get_current_revision() != before)
            connection.commit()
        finally:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()


if context.is_offline_mode():
    raise SystemExit("pgsearch migrations run online only: use `pgsearch db upgrade`")
run_migrations_online()
