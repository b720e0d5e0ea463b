"""Read-only database roles for psql and BI tools (Metabase, Superset, Grafana, pandas)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from pgsearch.errors import ConfigError

# The search functions a reader may call. They run as their owner (SECURITY DEFINER, see
# sql/views.sql), so a reader needs no privilege on the tables or embedding partitions behind them.
READER_FUNCTIONS = (
    "similar_assets",
    "dissimilar_assets",
    "similar_shapes",
    "dissimilar_shapes",
    "search_assets",
    "search_shapes",
)


def grant_reader(conn: psycopg.Connection, role: str, password: str | None = None) -> list[str]:
    """Creates `role` (LOGIN) if missing and lets it read the pgsearch views and call the search
    functions, nothing more. Idempotent: run it again after an upgrade adds views.

    Returns what it did, one line per step, for the command to print. Commits.
    """
    if not role or len(role.encode()) > 63:
        raise ConfigError(f"role name {role!r} must be 1 to 63 bytes long")
    ident = sql.Identifier(role)
    steps: list[str] = []
    with conn.transaction():
        found = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        if found is not None and found[0]:
            raise ConfigError(
                f"role {role!r} is a superuser: it reads and writes everything already; "
                "pick another name for a read-only role"
            )
        if found is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident))
        if password is not None:
            # A utility statement takes no bound parameters; Literal quotes the password.
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
        steps.append(
            f"role {role}: "
            + ("created" if found is None else "exists")
            + (", password set" if password is not None else "")
        )

        database = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), ident))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA pgsearch TO {}").format(ident))
        views = [
            row[0]
            for row in conn.execute(
                "SELECT viewname FROM pg_views WHERE schemaname = 'pgsearch' ORDER BY viewname"
            )
        ]
        for view in views:
            conn.execute(sql.SQL("GRANT SELECT ON pgsearch.{} TO {}").format(sql.Identifier(view), ident))
        steps.append(f"may read {len(views)} views: {', '.join(views)}")
        functions = [
            row[0]
            for row in conn.execute(
                "SELECT proname FROM pg_proc WHERE pronamespace = 'pgsearch'::regnamespace"
                " AND proname = ANY(%s) ORDER BY proname",
                (list(READER_FUNCTIONS),),
            )
        ]
        for name in functions:
            # Our names are not overloaded, so the name alone picks the function.
            conn.execute(
                sql.SQL("GRANT EXECUTE ON FUNCTION pgsearch.{} TO {}").format(sql.Identifier(name), ident)
            )
        steps.append(f"may call {len(functions)} search functions: {', '.join(functions)}")
    return steps
