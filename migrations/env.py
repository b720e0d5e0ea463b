"""Alembic environment: one psycopg connection, the version table inside the pgsearch schema,
and an advisory lock so that concurrent upgrades run one after the other."""

from __future__ import annotations

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool, text

SCHEMA = "pgsearch"
# Any constant works; it only has to be the same for every pgsearch process.
MIGRATION_LOCK = 0x70677365617263


def run_migrations_online() -> None:
    dsn = context.config.attributes["dsn"]
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
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()


if context.is_offline_mode():
    raise SystemExit("pgsearch migrations run online only: use `pgsearch db upgrade`")
run_migrations_online()
