"""Connections: which database, reaching it, and checking that its schema is current."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from pgsearch import migrate
from pgsearch.config import redact, resolve_dsn
from pgsearch.errors import DatabaseUnavailable, SchemaError, WriterRequired

MIN_SERVER_VERSION = 150000
MIN_PGVECTOR = (0, 8)
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Target:
    """A database to work on: its DSN and whether it is our embedded server."""

    dsn: str
    embedded: bool

    @property
    def label(self) -> str:
        return "the embedded server" if self.embedded else redact(self.dsn)


def target(dsn_option: str | None = None) -> Target:
    """--dsn / PGSEARCH_DSN / DATABASE_URL, else the embedded server, started on demand."""
    dsn = resolve_dsn(dsn_option)
    if dsn is not None:
        return Target(dsn, embedded=False)
    from pgsearch.server import EmbeddedServer

    return Target(EmbeddedServer().url(), embedded=True)


def connect(dsn: str, *, autocommit: bool = False, options: str | None = None) -> psycopg.Connection:
    """A psycopg connection with pgvector's types registered when the extension is there.

    `options` is libpq's (`-c name=value ...`): settings applied for the whole session."""
    extra: dict[str, Any] = {"options": options} if options else {}
    try:
        conn = psycopg.connect(dsn, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S, **extra)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to {redact(dsn)}: {_first_line(exc)}") from None
    except psycopg.ProgrammingError as exc:
        raise DatabaseUnavailable(f"cannot connect: {_first_line(exc)}") from None
    _register_vector(conn)
    return conn


def _register_vector(conn: psycopg.Connection) -> None:
    from pgvector.psycopg import register_vector

    try:
        register_vector(conn)
    except psycopg.ProgrammingError:
        # No vector extension yet: `upgrade` creates it, or says why it cannot.
        conn.rollback()


def check_server(conn: psycopg.Connection, label: str) -> None:
    """PostgreSQL >= 15 with pgvector >= 0.8 available (installed, or installable)."""
    if conn.info.server_version < MIN_SERVER_VERSION:
        raise SchemaError(
            f"{label} runs PostgreSQL {conn.info.server_version // 10000}; pgsearch needs 15 or later"
        )
    row = conn.execute(
        "SELECT coalesce(installed_version, default_version) FROM pg_available_extensions WHERE name = 'vector'"
    ).fetchone()
    if row is None:
        raise SchemaError(
            f"{label} has no pgvector extension available: install pgvector >= 0.8 on that server "
            "(or use the pgvector/pgvector Docker image, or the embedded default: no --dsn)"
        )
    version = tuple(int(part) for part in row[0].split(".")[:2] if part.isdigit())
    if version < MIN_PGVECTOR:
        raise SchemaError(
            f"{label} has pgvector {row[0]}; pgsearch needs 0.8 or later (upgrade the extension in that database)"
        )


def upgrade(t: Target) -> tuple[str | None, str]:
    """Brings the schema to head and the views, functions and triggers to this release's;
    returns (revision before, revision after). Idempotent, and one query when nothing is to do."""
    head = migrate.head_revision()
    with connect(t.dsn, autocommit=True) as conn:
        check_server(conn, t.label)
        before = migrate.schema_state(conn)
        if before.revision != head:
            _ensure_vector(conn, t.label)
    if not migrate.is_current(before):
        try:
            migrate.upgrade(t.dsn)
        except Exception as exc:  # alembic wraps driver errors in SQLAlchemy's
            orig = getattr(exc, "orig", exc)
            if isinstance(orig, psycopg.Error):
                raise SchemaError(f"upgrading {t.label} failed: {_first_line(orig)}") from None
            raise
        if before.revision is not None and before.revision != head:
            # Migrations rewrite rows and fill tables inside a transaction, where VACUUM cannot
            # run: the visibility map that index-only scans need comes now.
            with connect(t.dsn, autocommit=True) as conn:
                conn.execute("VACUUM (ANALYZE) pgsearch.assets, pgsearch.group_members")
    return before.revision, head


def _ensure_vector(conn: psycopg.Connection, label: str) -> None:
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.UniqueViolation:
        pass  # a concurrent command created it between IF NOT EXISTS and the insert
    except psycopg.errors.InsufficientPrivilege:
        raise SchemaError(
            f"{label}: the vector extension is not installed in this database and "
            f"role {conn.info.user!r} may not create it; ask an administrator to run "
            "CREATE EXTENSION vector; in it"
        ) from None


def open_database(
    dsn_option: str | None = None, *, autocommit: bool = False, options: str | None = None
) -> psycopg.Connection:
    """The connection every command works through, with the schema checked.

    The embedded server is ours, so it is upgraded silently; a database named by a DSN is
    someone else's and is only upgraded when asked (`pgsearch db upgrade`).
    """
    t = target(dsn_option)
    if t.embedded:
        upgrade(t)
    conn = connect(t.dsn, autocommit=autocommit, options=options)
    state = migrate.schema_state(conn)
    head = migrate.head_revision()
    if not migrate.is_current(state):
        conn.close()
        where = " with the same --dsn" if not t.embedded else ""
        if state.revision is None:
            behind = "has no pgsearch schema"
        elif state.revision != head:
            behind = f"is at schema revision {state.revision}"
        else:
            # The tables are current; the views and functions are another release's.
            behind = "has the views and functions of another pgsearch version"
        raise SchemaError(f"{t.label} {behind}; this pgsearch needs {head}: run `pgsearch db upgrade`{where}")
    if not state.writer:
        # A reader (pgsearch db grant-reader): a write it tries ends in WriterRequired, which says
        # so, instead of the driver's permission error.
        conn.cursor_factory = ReaderCursor
    if not autocommit:
        conn.commit()
    return conn


class ReaderCursor(psycopg.Cursor[Any]):
    """The cursor of a reader's connection: InsufficientPrivilege becomes WriterRequired."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute(*args, **kwargs)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise _writer_required(self.connection, exc) from None

    def executemany(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().executemany(*args, **kwargs)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise _writer_required(self.connection, exc) from None

    @contextmanager
    def copy(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            with super().copy(*args, **kwargs) as copy:
                yield copy
        except psycopg.errors.InsufficientPrivilege as exc:
            raise _writer_required(self.connection, exc) from None


def _writer_required(conn: psycopg.Connection, exc: BaseException) -> WriterRequired:
    return WriterRequired(
        f"role {conn.info.user!r} may only read (a reader made by `pgsearch db grant-reader`): "
        f"{_first_line(exc)}; this needs a writer role, such as the one that owns the pgsearch schema"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
