"""Schema versions under alembic, run programmatically from the installed package."""

from __future__ import annotations

import importlib
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

SCHEMA = "pgsearch"
VERSION_TABLE = "alembic_version"


def _config(dsn: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_package_dir("pgsearch.migrations")))
    cfg.attributes["dsn"] = dsn
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(_config(""))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(conn: psycopg.Connection) -> str | None:
    """The revision the database is at, read without alembic's engine (one cheap query)."""
    row = conn.execute("SELECT to_regclass('pgsearch.alembic_version') IS NOT NULL").fetchone()
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
    assert driver_conn is not None
    with driver_conn.cursor() as cur:
        cur.execute(sql_file(name).encode())


def sql_file(name: str) -> str:
    """The text of one of the packaged sql/ files."""
    return (_package_dir("pgsearch.sql") / name).read_text(encoding="utf-8")


def _package_dir(name: str) -> Path:
    """Where a data package (sql/, migrations/) sits, in the tree or in an installed wheel."""
    module = importlib.import_module(name)
    assert module.__file__ is not None
    return Path(module.__file__).parent
