"""Schema versions under alembic, and the SQL objects of sql/, run programmatically from the
installed package.

Two kinds of schema, kept two ways:

* tables, columns, indexes and data moves are alembic migrations (migrations/versions/), from the
  0007 baseline on;
* views, functions and triggers are files under sql/ (one object each, see sql/README.md), applied
  again after the migrations whenever the files differ from the ones last applied. A hash of the
  files in pgsearch.sql_objects says which were, so a command start checks them with the revision
  in one query.

Objects are applied in the migrations' transaction, under their advisory lock (migrations/env.py):
first in place (CREATE OR REPLACE keeps grants and the user views that read ours); when an object
changed its shape (a view's columns, a function's result or arguments), every pgsearch view and
function is dropped and created again, the grants on them restored, unless an object of the user's
depends on one of them: then nothing changes and the error names it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from psycopg import sql

# sql/ is mapped into the package by setuptools, out of mypy's sight.
from pgsearch import sql as objects  # type: ignore[attr-defined]
from pgsearch.errors import SchemaError

SCHEMA = "pgsearch"
VERSION_TABLE = "alembic_version"
# The first revision pgsearch keeps; 0.1's 0001..0006 are squashed into it.
BASELINE = "0007"

# Which object files were applied last: one row, written by apply_objects.
OBJECTS_TABLE = """
CREATE TABLE IF NOT EXISTS pgsearch.sql_objects (
    files_hash text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE pgsearch.sql_objects IS
    'Bookkeeping of pgsearch db upgrade: the hash of the sql/ object files (views, functions, '
    'triggers) last applied to this database.';
"""

# Revision and objects hash in one statement: the check every command start makes.
# Whether the role may write is read with them (a reader may not: pgsearch db grant-reader).
_STATE = (
    "SELECT (SELECT version_num FROM pgsearch.alembic_version), (SELECT files_hash FROM pgsearch.sql_objects),"
    " has_table_privilege('pgsearch.assets', 'INSERT')"
)


class SchemaState(NamedTuple):
    revision: str | None
    objects: str | None  # hash of the object files applied; None when never applied
    writer: bool = True  # the role may write pgsearch's tables


def _config(dsn: str, objects_step: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_package_dir("pgsearch.migrations")))
    cfg.attributes["dsn"] = dsn
    # "apply": the object files after the migrations; "drop": pgsearch's objects before them.
    cfg.attributes["objects"] = objects_step
    return cfg


def head_revision() -> str:
    script = ScriptDirectory.from_config(_config(""))
    head = script.get_current_head()
    assert head is not None
    return head


def objects_hash() -> str:
    """The hash of this release's object files, as apply_objects records it."""
    return str(objects.objects_hash())


def current_revision(conn: psycopg.Connection) -> str | None:
    """The revision the database is at, read without alembic's engine."""
    row = conn.execute("SELECT to_regclass('pgsearch.alembic_version') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute("SELECT version_num FROM pgsearch.alembic_version").fetchone()
    return found[0] if found else None


def schema_state(conn: psycopg.Connection) -> SchemaState:
    """The revision and the applied objects' hash: one query on a database that has both tables.

    A database without them (empty, or made by pgsearch 0.1, which had no sql_objects) costs a
    failed statement and the revision on its own."""
    try:
        with conn.transaction():
            row = conn.execute(_STATE).fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
        return SchemaState(current_revision(conn), None)
    except psycopg.errors.InsufficientPrivilege:
        raise SchemaError(
            f"role {conn.info.user!r} may not read pgsearch's schema revision: a reader made by an "
            f"older pgsearch, or a role pgsearch did not make; run `pgsearch db grant-reader "
            f"{conn.info.user}` as the writer"
        ) from None
    assert row is not None
    return SchemaState(row[0], row[1], bool(row[2]))


def is_current(state: SchemaState) -> bool:
    return state.revision == head_revision() and state.objects == objects_hash()


def upgrade(dsn: str, revision: str = "head") -> None:
    """Migrates to `revision`; at head the object files are applied too (in the same transaction).
    Below head the objects are dropped: they are written for the head schema."""
    at_head = revision in ("head", head_revision())
    command.upgrade(_config(dsn, "apply" if at_head else "drop"), revision)


def downgrade(dsn: str, revision: str = "base") -> None:
    """Drops pgsearch's objects, then migrates down to `revision`: base (nothing of pgsearch left,
    data included) or a revision from the baseline on. The history before the baseline is gone."""
    if revision != "base":
        try:
            ScriptDirectory.from_config(_config(dsn)).get_revision(revision)
        except (CommandError, RevisionError):
            raise SchemaError(
                f"cannot downgrade to revision {revision!r}: this pgsearch keeps its schema history "
                f"from {BASELINE} on (pgsearch 0.1's revisions 0001..0006 are squashed into it). "
                f"Downgrade goes to base (drops every pgsearch table, view and function, with their "
                f"data) or to a revision from {BASELINE} on, without its views and functions until "
                "the next `pgsearch db upgrade`"
            ) from None
    command.downgrade(_config(dsn, "drop"), revision)


def run_sql(conn: psycopg.Connection, text: str) -> None:
    """Runs a script of SQL statements on the psycopg connection.

    With no parameters, so the script's own `%I` / `%s` (format() inside plpgsql) are not taken
    for placeholders."""
    with conn.cursor() as cur:
        cur.execute(text.encode())


# -- objects ------------------------------------------------------------------------------------


class _Reshaped(Exception):
    """An object file changed an object's shape in a way CREATE OR REPLACE takes for a new one."""


def apply_objects(conn: psycopg.Connection, *, force: bool = False) -> bool:
    """Applies every object file in order, inside the caller's transaction; False when the files
    are the ones applied last and `force` is not set (a migration ran: it may have dropped some).

    SchemaError, with nothing changed once the caller rolls back, when an object must be dropped
    and one of the user's own depends on it."""
    run_sql(conn, OBJECTS_TABLE)
    applied = conn.execute("SELECT files_hash FROM pgsearch.sql_objects").fetchone()
    if not force and applied is not None and applied[0] == objects_hash():
        return False
    grants = _grants(conn)
    # Triggers have no dependents: all of pgsearch's go, and the files create those that remain.
    _drop_triggers(conn, _ALL)
    with _objects_search_path(conn):
        conn.execute("SAVEPOINT pgsearch_objects")
        try:
            _run_files(conn)
            overloaded = conn.execute(_OVERLOADED).fetchall()
            if overloaded:
                # A function whose argument types changed: CREATE OR REPLACE made a second one.
                raise _Reshaped(", ".join(row[0] for row in overloaded))
        except (psycopg.errors.InvalidFunctionDefinition, psycopg.errors.InvalidTableDefinition, _Reshaped):
            conn.execute("ROLLBACK TO SAVEPOINT pgsearch_objects")
            drop_objects(conn, reason="its shape changes in this release")
            _run_files(conn)
        else:
            conn.execute("RELEASE SAVEPOINT pgsearch_objects")
    _drop_stale(conn)
    _restore_grants(conn, grants)
    conn.execute("DELETE FROM pgsearch.sql_objects")
    conn.execute("INSERT INTO pgsearch.sql_objects (files_hash) VALUES (%s)", (objects_hash(),))
    return True


def drop_objects(conn: psycopg.Connection, *, reason: str = "the downgrade drops it") -> None:
    """Drops every pgsearch view, function and trigger (not an extension's), without CASCADE."""
    _drop(conn, _ALL, reason)
    if conn.execute("SELECT to_regclass('pgsearch.sql_objects')").fetchone() != (None,):
        conn.execute("DELETE FROM pgsearch.sql_objects")


def _run_files(conn: psycopg.Connection) -> None:
    for path in objects.OBJECT_FILES:
        run_sql(conn, objects.object_text(path))


@contextmanager
def _objects_search_path(conn: psycopg.Connection) -> Iterator[None]:
    """The search_path the object files are applied with, which the search functions pin with
    `SET search_path FROM CURRENT`: pgsearch, the vector extension's schema, pg_temp."""
    row = conn.execute(
        "SELECT current_setting('search_path'), n.nspname FROM pg_extension AS e"
        " JOIN pg_namespace AS n ON n.oid = e.extnamespace WHERE e.extname = 'vector'"
    ).fetchone()
    if row is None:
        raise SchemaError("the vector extension is not installed in this database: run `pgsearch db upgrade`")
    before, vector_schema = row
    pinned = sql.SQL("pgsearch, {}, pg_temp").format(sql.Identifier(vector_schema)).as_string(conn)
    conn.execute("SELECT set_config('search_path', %s, true)", (pinned,))
    yield
    conn.execute("SELECT set_config('search_path', %s, true)", (before,))


# Which of pgsearch's objects a query covers: all, or the named views and functions.
class _Which(NamedTuple):
    views: list[str] | None
    functions: list[str] | None


_ALL = _Which(None, None)

# pgsearch's views and functions (those an extension installed into the schema excepted), the
# parts a view brings along (its rewrite rule, its row type) and the triggers on pgsearch's
# tables that run one of the functions.
_OURS = """
WITH ours AS (
    SELECT 'pg_class'::regclass AS classid, c.oid AS objid
      FROM pg_class AS c
     WHERE c.relnamespace = 'pgsearch'::regnamespace AND c.relkind = 'v'
       AND (%(views)s::text[] IS NULL OR c.relname = ANY (%(views)s::text[]))
       AND NOT EXISTS (SELECT 1 FROM pg_depend AS e
                        WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
    UNION ALL
    SELECT 'pg_proc'::regclass, p.oid
      FROM pg_proc AS p
     WHERE p.pronamespace = 'pgsearch'::regnamespace
       AND (%(functions)s::text[] IS NULL OR p.proname = ANY (%(functions)s::text[]))
       AND NOT EXISTS (SELECT 1 FROM pg_depend AS e
                        WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e')
),
parts AS (
    SELECT o.classid, o.objid FROM ours AS o
    UNION ALL
    SELECT 'pg_rewrite'::regclass, r.oid
      FROM pg_rewrite AS r JOIN ours AS o ON o.classid = 'pg_class'::regclass AND r.ev_class = o.objid
    UNION ALL
    SELECT 'pg_type'::regclass, c.reltype
      FROM pg_class AS c JOIN ours AS o ON o.classid = 'pg_class'::regclass AND c.oid = o.objid
    UNION ALL
    SELECT 'pg_trigger'::regclass, t.oid
      FROM pg_trigger AS t
      JOIN pg_class AS c ON c.oid = t.tgrelid
      JOIN ours AS o ON o.classid = 'pg_proc'::regclass AND t.tgfoid = o.objid
     WHERE c.relnamespace = 'pgsearch'::regnamespace AND NOT t.tgisinternal
)
"""

# What depends on the objects and is not one of them: what the user made on top of pgsearch.
_DEPENDENTS = sql.Composed(
    [
        sql.SQL(_OURS),
        sql.SQL("""
SELECT DISTINCT
       CASE WHEN d.classid = 'pg_rewrite'::regclass  -- a view's rule: name the view
            THEN (SELECT 'view ' || (pg_identify_object('pg_class'::regclass, r.ev_class, 0)).identity
                    FROM pg_rewrite AS r WHERE r.oid = d.objid)
            ELSE (SELECT i.type || ' ' || i.identity FROM pg_identify_object(d.classid, d.objid, d.objsubid) AS i)
       END,
       (SELECT i.type || ' ' || i.identity FROM pg_identify_object(d.refclassid, d.refobjid, 0) AS i)
  FROM pg_depend AS d
  JOIN parts AS p ON p.classid = d.refclassid AND p.objid = d.refobjid
 WHERE d.deptype IN ('n', 'a')
   AND NOT EXISTS (SELECT 1 FROM parts AS q WHERE q.classid = d.classid AND q.objid = d.objid)
 ORDER BY 1, 2
"""),
    ]
)

_TRIGGERS = sql.Composed(
    [
        sql.SQL(_OURS),
        sql.SQL("""
SELECT t.tgname, c.relname
  FROM parts AS p JOIN pg_trigger AS t ON p.classid = 'pg_trigger'::regclass AND t.oid = p.objid
  JOIN pg_class AS c ON c.oid = t.tgrelid
 ORDER BY c.relname, t.tgname
"""),
    ]
)

_VIEWS = sql.Composed(
    [
        sql.SQL(_OURS),
        sql.SQL("""
SELECT c.relname FROM parts AS p JOIN pg_class AS c ON p.classid = 'pg_class'::regclass AND c.oid = p.objid
 ORDER BY 1
"""),
    ]
)

# A function with its argument types as (schema, type name) pairs: enough for DROP and GRANT.
_SIGNATURE = """
       ARRAY(SELECT n.nspname FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(type, i)
               JOIN pg_type AS y ON y.oid = a.type JOIN pg_namespace AS n ON n.oid = y.typnamespace
              ORDER BY a.i),
       ARRAY(SELECT y.typname FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a(type, i)
               JOIN pg_type AS y ON y.oid = a.type
              ORDER BY a.i)
"""

_FUNCTIONS = sql.Composed(
    [
        sql.SQL(_OURS),
        sql.SQL("SELECT p.proname,"),
        sql.SQL(_SIGNATURE),
        sql.SQL("""
  FROM parts AS q JOIN pg_proc AS p ON q.classid = 'pg_proc'::regclass AND p.oid = q.objid
 ORDER BY 1
"""),
    ]
)

_OVERLOADED = """
SELECT proname FROM pg_proc WHERE pronamespace = 'pgsearch'::regnamespace
 GROUP BY proname HAVING count(*) > 1 ORDER BY 1
"""


def _params(which: _Which) -> dict[str, Any]:
    return {"views": which.views, "functions": which.functions}


def _function(name: str, schemas: list[str], types: list[str]) -> sql.Composable:
    arguments = sql.SQL(", ").join(sql.Identifier(s, t) for s, t in zip(schemas, types, strict=True))
    return sql.SQL("{}({})").format(sql.Identifier(SCHEMA, name), arguments)


def _drop_triggers(conn: psycopg.Connection, which: _Which) -> None:
    for trigger, table in conn.execute(_TRIGGERS, _params(which)).fetchall():
        conn.execute(
            sql.SQL("DROP TRIGGER {} ON {}").format(sql.Identifier(trigger), sql.Identifier(SCHEMA, table))
        )


def _drop(conn: psycopg.Connection, which: _Which, reason: str) -> None:
    """Drops the objects `which` names, or raises SchemaError naming what of the user's depends on
    them (and drops nothing)."""
    params = _params(which)
    dependents = conn.execute(_DEPENDENTS, params).fetchall()
    if dependents:
        listed = "; ".join(f"{theirs} depends on {ours}" for theirs, ours in dependents)
        raise SchemaError(
            f"pgsearch db upgrade must drop and re-create pgsearch objects ({reason}), and objects "
            f"that are not pgsearch's depend on them: {listed}. Nothing was changed: drop those "
            "(and make them again after the upgrade), then run the upgrade again"
        )
    _drop_triggers(conn, which)
    views = [row[0] for row in conn.execute(_VIEWS, params)]
    if views:
        # One statement: views that read each other go together without CASCADE.
        names = sql.SQL(", ").join(sql.Identifier(SCHEMA, v) for v in views)
        conn.execute(sql.SQL("DROP VIEW {}").format(names))
    functions = conn.execute(_FUNCTIONS, params).fetchall()
    if functions:
        signatures = sql.SQL(", ").join(_function(*row) for row in functions)
        conn.execute(sql.SQL("DROP FUNCTION {}").format(signatures))


def _drop_stale(conn: psycopg.Connection) -> None:
    """Drops the views and functions no file defines any more (a release removed them)."""
    views = [row[0] for row in conn.execute(_VIEWS, _params(_ALL)) if row[0] not in objects.view_names()]
    functions = [
        row[0] for row in conn.execute(_FUNCTIONS, _params(_ALL)) if row[0] not in objects.function_names()
    ]
    if views or functions:
        _drop(conn, _Which(views, functions), "a file of sql/ no longer defines it")


# -- grants -------------------------------------------------------------------------------------

# Grants to roles on pgsearch's views and functions (PUBLIC's are the files' to decide, the
# owner's come with ownership). `key` tells whether the same object exists after the files ran.
_GRANTS = sql.Composed(
    [
        sql.SQL("""
SELECT 'view', c.relname, NULL::text[], NULL::text[], c.oid::regclass::text AS key,
       r.rolname, a.privilege_type, a.is_grantable
  FROM pg_class AS c CROSS JOIN aclexplode(c.relacl) AS a JOIN pg_roles AS r ON r.oid = a.grantee
 WHERE c.relnamespace = 'pgsearch'::regnamespace AND c.relkind = 'v' AND a.grantee <> c.relowner
UNION ALL
SELECT 'function', p.proname, """),
        sql.SQL(_SIGNATURE),
        sql.SQL(""", p.oid::regprocedure::text,
       r.rolname, a.privilege_type, a.is_grantable
  FROM pg_proc AS p CROSS JOIN aclexplode(p.proacl) AS a JOIN pg_roles AS r ON r.oid = a.grantee
 WHERE p.pronamespace = 'pgsearch'::regnamespace AND a.grantee <> p.proowner
"""),
    ]
)

_KEYS = """
SELECT c.oid::regclass::text FROM pg_class AS c
 WHERE c.relnamespace = 'pgsearch'::regnamespace AND c.relkind = 'v'
UNION ALL
SELECT p.oid::regprocedure::text FROM pg_proc AS p WHERE p.pronamespace = 'pgsearch'::regnamespace
"""

_FUNCTION_NAMES = "SELECT p.proname FROM pg_proc AS p WHERE p.pronamespace = 'pgsearch'::regnamespace"

_PRIVILEGES = {
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
    "MAINTAIN",
    "EXECUTE",
}


def _grants(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    return conn.execute(_GRANTS).fetchall()


def _restore_grants(conn: psycopg.Connection, grants: list[tuple[Any, ...]]) -> None:
    """Grants again what roles had on objects that were dropped and created again (reader roles
    of `pgsearch db grant-reader`, a BI tool's own role): a no-op for those replaced in place."""
    present = {row[0] for row in conn.execute(_KEYS)}
    functions = {row[0] for row in conn.execute(_FUNCTION_NAMES)}
    for kind, name, schemas, types, key, role, privilege, grantable in grants:
        if privilege not in _PRIVILEGES:
            continue
        if key in present:
            target = (
                sql.SQL("FUNCTION {}").format(_function(name, schemas, types))
                if kind == "function"
                else sql.Identifier(SCHEMA, name)
            )
        elif kind == "function" and name in functions:
            # Its arguments changed: named alone (pgsearch never overloads a function name).
            target = sql.SQL("FUNCTION {}").format(sql.Identifier(SCHEMA, name))
        else:
            continue
        conn.execute(
            sql.SQL("GRANT {} ON {} TO {}{}").format(
                sql.SQL(privilege),
                target,
                sql.Identifier(role),
                sql.SQL(" WITH GRANT OPTION") if grantable else sql.SQL(""),
            )
        )


def _package_dir(name: str) -> Path:
    """Where a data package (sql/, migrations/) sits, in the tree or in an installed wheel."""
    module = importlib.import_module(name)
    assert module.__file__ is not None
    return Path(module.__file__).parent
