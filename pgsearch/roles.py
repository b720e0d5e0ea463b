"""Read-only database roles for psql and BI tools (Metabase, Superset, Grafana, pandas).

A reader may SELECT the pgsearch views and tables and call the search functions, nothing more, and
sees the rows of the datasets it was given only (every dataset when none was named): row-level
security on every table that holds a dataset's rows (migrations/versions/0010_reader_datasets.py)
reads pgsearch.reader_datasets, which grant-reader writes. The views are security_invoker and the
functions run with the caller's rights, so the policies apply through them too. For a role
that exists already, grant-reader takes charge of what the role may do inside the pgsearch schema
(its other privileges there are revoked) and makes it LOGIN, but it does not touch what lies
beyond that schema: a role with cluster-wide powers (SUPERUSER, CREATEDB, CREATEROLE, REPLICATION,
BYPASSRLS), or one that may still write pgsearch's data through a role it belongs to or objects it
owns, is refused with what to change, since such a role was made for other purposes.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg import sql

from pgsearch.errors import ConfigError, NotFound

# The search functions a reader may call. They run with the caller's rights (see
# sql/functions/similar_assets.sql): a reader also has SELECT on the tables and the embedding
# partitions behind them, filtered by row-level security, and EXECUTE on the helpers they call
# (READER_HELPERS). `pgsearch db upgrade` gives back grants on objects it re-creates.
READER_FUNCTIONS = (
    "similar_assets",
    "dissimilar_assets",
    "similar_shapes",
    "dissimilar_shapes",
    "search_assets",
    "search_shapes",
)
READER_HELPERS = ("search_space", "item_embedding", "nearest_in_space", "query_direction")

# The relations a reader may SELECT: views, tables and partitioned parents, and partitions with
# row-level security on (the embedding partitions). Other partitions (neighbors_<id>, ...) are read
# through their parents, whose policies apply.
_READABLE = "(c.relkind IN ('v', 'p') OR (c.relkind = 'r' AND (NOT c.relispartition OR c.relrowsecurity)))"

# The tables a reader is given SELECT on.
_TABLES = """
SELECT c.relname FROM pg_class c
 WHERE c.relnamespace = 'pgsearch'::regnamespace
   AND (c.relkind = 'p' OR (c.relkind = 'r' AND (NOT c.relispartition OR c.relrowsecurity)))
 ORDER BY 1
"""

# Names that stand for something else where SQL expects a role (GRANT ... TO public), or that
# PostgreSQL refuses to create.
RESERVED_NAMES = {
    "public": "every role",
    "none": "no role",
    "current_user": "the role running the statement",
    "current_role": "the role running the statement",
    "session_user": "the role that logged in",
}

# Role attributes beyond reading, as pg_roles columns and their ALTER ROLE keywords.
POWERS = (
    ("rolcreatedb", "CREATEDB"),
    ("rolcreaterole", "CREATEROLE"),
    ("rolreplication", "REPLICATION"),
    ("rolbypassrls", "BYPASSRLS"),
)

# Everything `role` may do in the pgsearch schema beyond a reader's, membership and PUBLIC included:
# table privileges other than SELECT on a view, sequence privileges, CREATE on the schema, and
# EXECUTE on a SECURITY DEFINER function that is not a search function (others run with the
# caller's own rights, so calling them grants nothing).
_BEYOND_READING = (
    """
SELECT format('%%s on pgsearch.%%s', p.priv, c.relname)
  FROM pg_class c
 CROSS JOIN unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p(priv)
 WHERE c.relnamespace = 'pgsearch'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND NOT (p.priv = 'SELECT' AND """
    + _READABLE
    + """)
   AND has_table_privilege(%(role)s, c.oid, p.priv)
UNION ALL
SELECT format('%%s on sequence pgsearch.%%s', p.priv, c.relname)
  FROM pg_class c CROSS JOIN unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) AS p(priv)
 WHERE c.relnamespace = 'pgsearch'::regnamespace AND c.relkind = 'S'
   AND has_sequence_privilege(%(role)s, c.oid, p.priv)
UNION ALL
SELECT 'CREATE on schema pgsearch' WHERE has_schema_privilege(%(role)s, 'pgsearch', 'CREATE')
UNION ALL
SELECT format('EXECUTE on pgsearch.%%s()', f.proname)
  FROM pg_proc f
 WHERE f.pronamespace = 'pgsearch'::regnamespace AND f.prosecdef AND NOT f.proname = ANY(%(readers)s)
   AND has_function_privilege(%(role)s, f.oid, 'EXECUTE')
ORDER BY 1
"""
)

# The role's own grants in the pgsearch schema beyond a reader's (what REVOKE can take back),
# as (object, privilege).
_OWN_GRANTS = (
    """
SELECT format('pgsearch.%%I', c.relname), a.privilege_type
  FROM pg_class c CROSS JOIN aclexplode(c.relacl) AS a
 WHERE c.relnamespace = 'pgsearch'::regnamespace AND a.grantee = %(role)s
   AND NOT (a.privilege_type = 'SELECT' AND """
    + _READABLE
    + """)
UNION ALL
SELECT format('pgsearch.%%I(%%I)', c.relname, t.attname), a.privilege_type
  FROM pg_class c JOIN pg_attribute t ON t.attrelid = c.oid CROSS JOIN aclexplode(t.attacl) AS a
 WHERE c.relnamespace = 'pgsearch'::regnamespace AND a.grantee = %(role)s
UNION ALL
SELECT format('pgsearch.%%I()', f.proname), a.privilege_type
  FROM pg_proc f CROSS JOIN aclexplode(f.proacl) AS a
 WHERE f.pronamespace = 'pgsearch'::regnamespace AND a.grantee = %(role)s
   AND NOT f.proname = ANY(%(readers)s)
UNION ALL
SELECT 'schema pgsearch', a.privilege_type
  FROM pg_namespace n CROSS JOIN aclexplode(n.nspacl) AS a
 WHERE n.nspname = 'pgsearch' AND a.grantee = %(role)s AND a.privilege_type <> 'USAGE'
ORDER BY 1, 2
"""
)


def check_role_name(role: str) -> None:
    """ConfigError when `role` cannot name a reader: empty, too long, reserved, predefined."""
    if not isinstance(role, str) or not role or len(role.encode()) > 63 or "\x00" in role:
        raise ConfigError(f"role name {role!r} must be 1 to 63 bytes long, without NUL characters")
    if role.lower().startswith("pg_"):
        raise ConfigError(
            f"role name {role!r}: names starting with pg_ belong to PostgreSQL's predefined roles "
            "(pg_read_all_data, pg_monitor, ...), whose every member would gain what is granted; "
            "pick another name"
        )
    meaning = RESERVED_NAMES.get(role.lower())
    if meaning is not None:
        raise ConfigError(
            f"role name {role!r} is reserved: in SQL it stands for {meaning}; pick another name"
        )


def grant_reader(
    conn: psycopg.Connection,
    role: str,
    password: str | None = None,
    datasets: Sequence[str] | None = None,
) -> list[str]:
    """Creates `role` (LOGIN) if missing and lets it read the pgsearch views and tables and call
    the search functions, nothing more, seeing the rows of `datasets` only (None or empty: every
    dataset, those made later included). Idempotent: run it again after an upgrade adds views; a
    second run replaces the role's datasets.

    An existing role is made LOGIN and loses its other privileges in the pgsearch schema; one
    with cluster-wide powers, or that may still write pgsearch's data through membership or
    ownership, is refused (ConfigError) with what to change, and nothing is done.

    Returns what it did, one line per step, for the command to print. Commits.
    """
    check_role_name(role)
    try:
        with conn.transaction():
            return _grant_reader(conn, role, password, list(datasets or ()))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ConfigError(
            f"cannot make role {role!r} a reader: {_first_line(exc)} "
            "(grant-reader needs a superuser, or a role with CREATEROLE that owns the pgsearch schema)"
        ) from None
    except psycopg.errors.ReservedName as exc:
        raise ConfigError(f"role name {role!r} is reserved: {_first_line(exc)}; pick another name") from None


def _grant_reader(
    conn: psycopg.Connection, role: str, password: str | None, datasets: list[str]
) -> list[str]:
    ident = sql.Identifier(role)
    steps: list[str] = []
    ids: list[int] = []
    for name in dict.fromkeys(datasets):
        row = conn.execute("SELECT id FROM pgsearch.datasets WHERE name = %s", (name,)).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute("SELECT name FROM pgsearch.datasets ORDER BY name")]
            raise NotFound(f"dataset {name!r} does not exist (datasets: {', '.join(known) or 'none'})")
        ids.append(row[0])
    found = conn.execute(
        "SELECT oid, rolsuper, rolcanlogin, rolname = current_user,"
        " rolcreatedb, rolcreaterole, rolreplication, rolbypassrls"  # in the order of POWERS
        " FROM pg_roles WHERE rolname = %s",
        (role,),
    ).fetchone()
    did: list[str] = []
    if found is None:
        conn.execute(
            sql.SQL(
                "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
            ).format(ident)
        )
        did.append("created")
    else:
        oid, superuser, can_login, is_me, *powers = found
        if superuser:
            raise ConfigError(
                f"role {role!r} is a superuser: it reads and writes everything already; "
                "pick another name for a read-only role"
            )
        if is_me:
            raise ConfigError(
                f"role {role!r} is the role this command connects as; pick another name for a read-only role"
            )
        held = [keyword for (_, keyword), value in zip(POWERS, powers, strict=True) if value]
        if held:
            undo = " ".join("NO" + keyword for keyword in held)
            raise ConfigError(
                f"role {role!r} exists and has {', '.join(held)}: more than a read-only role may "
                f"have, and grant-reader leaves a role made for other purposes as it is; pick "
                f"another name, or remove them first: ALTER ROLE {ident.as_string(conn)} {undo}"
            )
        did.append("exists")
        if not can_login:
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN").format(ident))
            did.append("may now log in")
        params = {"role": oid, "readers": list(READER_FUNCTIONS + READER_HELPERS)}
        own: dict[str, list[str]] = {}
        for thing, privilege in conn.execute(_OWN_GRANTS, params):
            own.setdefault(thing, []).append(privilege)
        if own:
            for statement in (
                sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA pgsearch FROM {}"),
                sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgsearch FROM {}"),
                sql.SQL("REVOKE ALL ON ALL ROUTINES IN SCHEMA pgsearch FROM {}"),
                sql.SQL("REVOKE CREATE ON SCHEMA pgsearch FROM {}"),
            ):
                conn.execute(statement.format(ident))
            count = sum(len(privileges) for privileges in own.values())
            listed = _listed([f"{', '.join(privileges)} on {thing}" for thing, privileges in own.items()])
            steps.append(f"revoked {count} privileges beyond reading: {listed}")
        beyond = [row[0] for row in conn.execute(_BEYOND_READING, params)]
        if beyond:
            through = [
                row[0]
                for row in conn.execute(
                    "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid"
                    " WHERE m.member = %s ORDER BY 1",
                    (oid,),
                )
            ]
            via = f"membership in {', '.join(through)}" if through else "ownership, or a grant to PUBLIC"
            raise ConfigError(
                f"role {role!r} may still {_listed(beyond)}, through {via}; grant-reader changes "
                f"nothing beyond the role's own grants in the pgsearch schema: pick another name, "
                f"or take that away first (REVOKE ... FROM {ident.as_string(conn)})"
            )
    if password is not None:
        # A utility statement takes no bound parameters; Literal quotes the password. SCRAM,
        # whatever the server's default: the embedded server's pg_hba.conf asks for SCRAM.
        conn.execute("SET LOCAL password_encryption = 'scram-sha-256'")
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(ident, sql.Literal(password)))
        did.append("password set")
    elif found is None:
        did.append(
            "no password: it cannot log in where passwords are asked for (the embedded server) until given one with --password"
        )
    steps.insert(0, f"role {role}: " + ", ".join(did))

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
    tables = [row[0] for row in conn.execute(_TABLES)]
    for table in tables:
        conn.execute(sql.SQL("GRANT SELECT ON pgsearch.{} TO {}").format(sql.Identifier(table), ident))
    steps.append(f"may read {len(tables)} tables and embedding partitions (row-level security applies)")
    conn.execute("DELETE FROM pgsearch.reader_datasets WHERE role_name = %s", (role,))
    if ids:
        conn.execute(
            "INSERT INTO pgsearch.reader_datasets (role_name, dataset_id) SELECT %s, unnest(%s::bigint[])",
            (role, ids),
        )
        steps.append(f"sees only datasets: {', '.join(dict.fromkeys(datasets))} (no other dataset's rows)")
    else:
        conn.execute(
            "INSERT INTO pgsearch.reader_datasets (role_name, dataset_id) VALUES (%s, NULL)", (role,)
        )
        steps.append("sees every dataset, present and future (no --dataset given)")
    functions = [
        row[0]
        for row in conn.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'pgsearch'::regnamespace"
            " AND proname = ANY(%s) ORDER BY proname",
            (list(READER_FUNCTIONS + READER_HELPERS),),
        )
    ]
    for name in functions:
        # Our names are not overloaded, so the name alone picks the function.
        conn.execute(
            sql.SQL("GRANT EXECUTE ON FUNCTION pgsearch.{} TO {}").format(sql.Identifier(name), ident)
        )
    searches = [name for name in functions if name in READER_FUNCTIONS]
    helpers = [name for name in functions if name not in READER_FUNCTIONS]
    steps.append(
        f"may call {len(searches)} search functions: {', '.join(searches)}"
        f" (and the helpers they call: {', '.join(helpers)})"
    )
    return steps


def _listed(items: list[str], most: int = 5) -> str:
    return "; ".join(items[:most]) + (f"; and {len(items) - most} more" if len(items) > most else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
