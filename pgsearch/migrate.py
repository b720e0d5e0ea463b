"""Schema versions under alembic, run programmatically from the installed package."""

from __future__ import annotations

from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

SCHEMA = "pgsearch"
VERSION_TABLE = "alembic_version"


def _config(dsn: str) -> Config:
    from pgsearch import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.attributes["dsn"] = dsn
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(_config(""))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(conn: psycopg.Connection) -> str | None:
    """The revision the database is at, read without alembic's engine (one cheap query)."""
    row = conn.execute(
        "SELECT to_regclass('pgsearch.alembic_version') IS NOT NULL"
    ).fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute("SELECT version_num FROM pgsearch.alembic_version").fetchone()
    return found[0] if found else None


def upgrade(dsn: str, revision: str = "head") -> None:
    command.upgrade(_config(dsn), revision)


def downgrade(dsn: str, revision: str = "base") -> None:
    command.downgrade(_config(dsn), revision)


def apply_sql_file(name: str) -> None:
    """Runs a packaged sql/ file inside the migration's transaction.

    Straight on the psycopg connection with no parameters, so the file's own `%I` / `%s` (format()
    inside plpgsql) are not taken for placeholders.
    """
    from alembic import op

    driver_conn = op.get_bind().connection.driver_connection
    with driver_conn.cursor() as cur:
        cur.execute(sql_file(name).encode())


def sql_file(name: str) -> str:
    """The text of one of the packaged sql/ files."""
    from pgsearch import sql

    return (Path(sql.__file__).parent / name).read_text(encoding="utf-8")


