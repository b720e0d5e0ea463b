"""Where the database is and what it runs, for `pgsearch db status`: the embedded server's state
or the DSN's server (password redacted), the PostgreSQL and pgvector versions, and the schema's
revision against the one this pgsearch expects."""

from __future__ import annotations

from typing import Any

import psycopg

from pgsearch import db as database
from pgsearch import migrate
from pgsearch.config import redact, resolve_dsn


def database_status(dsn: str | None) -> dict[str, Any]:
    """The facts in the order `pgsearch db status` prints them; a stopped embedded server is
    reported, not started."""
    info: dict[str, Any] = {}
    resolved = resolve_dsn(dsn)
    if resolved is None:
        from pgsearch.server import EmbeddedServer

        state = EmbeddedServer().status()
        info.update(
            kind="embedded",
            running=state.running,
            data_directory=str(state.pgdata),
            # The URL without its password, libpq reading it from the home's passfile (only
            # `pgsearch db url` prints the secret).
            url=state.passfile_url if state.running else None,
        )
        url = state.url if state.running else None
    else:
        info.update(kind="dsn", server=redact(resolved))
        url = resolved
    if url is not None:
        with database.connect(url, autocommit=True) as conn:
            info["running"] = True
            info.update(server_versions(conn))
            info["schema_revision"] = migrate.current_revision(conn)
    info["schema_head"] = migrate.head_revision()
    return info


def server_versions(conn: psycopg.Connection) -> dict[str, str | None]:
    """server_version as the server spells it; pgvector's installed version, or the available
    one marked as not yet created, or None when the server does not have it."""
    version = conn.execute("SHOW server_version").fetchone()
    row = conn.execute(
        "SELECT installed_version, default_version FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    if row is None:
        pgvector = None
    else:
        pgvector = row[0] or f"{row[1]} (available, not yet created in this database)"
    return {"server_version": version[0] if version else None, "pgvector": pgvector}
